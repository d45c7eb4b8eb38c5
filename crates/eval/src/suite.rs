//! The evaluation run: one model against a reference set, beside its baselines.
//! 1. Load the model, the judge (musicnn) and the reference clips (their captions are the
//!    prompts); check the reference set against the clips the model was trained on.
//! 2. Produce every system's audio for every clip, with fixed seeds: the reference itself, the
//!    oracle (reference through the conversion), the model on each task, the model without its
//!    prompt, the dice game, the Markov chain and shaped noise. Each clip is written to
//!    `OUT/audio/SYSTEM/ID.wav` (16-bit) and read from there when the run is resumed.
//! 3. Analyse each clip once: musicnn tags and per-patch embeddings, tempo, key, and for edits
//!    the seam distances; kept in `OUT/cache/SYSTEM/ID.json`, so an interrupted run resumes.
//! 4. Compute the metrics per system ([`crate::metrics`]) and write the report
//!    ([`crate::report`]).

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use rayon::prelude::*;

use musicdiff_common::atomic::write_bytes;
use musicdiff_dsp::audio::{self, WavFormat};
use musicdiff_dsp::features::LogMelExtractor;
use musicdiff_dsp::key::estimate_key;
use musicdiff_dsp::matrix::Matrix;
use musicdiff_dsp::tempo::estimate_tempo;
use musicdiff_judge::Musicnn;
use musicdiff_pipeline::model_dir::read_training_clips;
use musicdiff_pipeline::{Generator, Request, Task};
use serde::{Deserialize, Serialize};

use crate::baselines::{self, MarkovChain, PoolClip};
use crate::error::{EvalError, Result};
use crate::reference::{self, Clip};
use crate::report::Report;
use crate::seams::{self, SEAM_WINDOW_SECONDS};

/// The editing tasks a model is evaluated on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EvalTask {
    /// The whole clip from its caption.
    Generate,
    /// The middle third of the reference clip regenerated.
    Fill,
    /// The second half of the reference clip regenerated from the first.
    Continue,
}

impl EvalTask {
    pub const ALL: [EvalTask; 3] = [EvalTask::Generate, EvalTask::Fill, EvalTask::Continue];

    pub fn name(self) -> &'static str {
        match self {
            EvalTask::Generate => "generate",
            EvalTask::Fill => "fill",
            EvalTask::Continue => "continue",
        }
    }

    /// Parses "generate", "fill" or "continue".
    pub fn parse(s: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|t| t.name() == s.trim())
            .ok_or_else(|| {
                EvalError::invalid(
                    "tasks",
                    format!("unknown task '{s}' (expected generate, fill or continue)"),
                )
            })
    }

    /// Seam times in samples of an edit of a clip of `length` samples.
    pub fn seams(self, length: usize) -> Vec<usize> {
        match self {
            EvalTask::Generate => vec![],
            EvalTask::Fill => vec![length / 3, 2 * length / 3],
            EvalTask::Continue => vec![length / 2],
        }
    }
}

/// One row of the report: something that produces a clip per reference caption.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum System {
    /// The reference audio itself (the judges' ceiling on tempo, key and tags).
    Reference,
    /// The reference's log-mel through the conversion path.
    Oracle,
    /// The model on a task.
    Model(EvalTask),
    /// The model with an empty prompt and no fields.
    Unprompted,
    /// Mozart's dice game over the reference bars.
    DiceGame,
    /// First-order Markov chain over clustered training frames.
    MarkovChain,
    /// Gaussian log-mel with the reference's band statistics.
    ShapedNoise,
}

impl System {
    pub fn name(self) -> String {
        match self {
            System::Reference => "reference".into(),
            System::Oracle => "oracle".into(),
            System::Model(EvalTask::Generate) => "model".into(),
            System::Model(t) => format!("model-{}", t.name()),
            System::Unprompted => "model-unprompted".into(),
            System::DiceGame => "dice-game".into(),
            System::MarkovChain => "markov-chain".into(),
            System::ShapedNoise => "shaped-noise".into(),
        }
    }

    pub fn description(self) -> &'static str {
        match self {
            System::Reference => "the reference clips (real audio, no conversion)",
            System::Oracle => "reference log-mel -> conversion (the conversion's ceiling)",
            System::Model(EvalTask::Generate) => "the model, generating from the caption",
            System::Model(EvalTask::Fill) => "the model filling the middle third",
            System::Model(EvalTask::Continue) => "the model continuing the first half",
            System::Unprompted => "the model with an empty prompt",
            System::DiceGame => "random bars of other reference clips, cut on the beat",
            System::MarkovChain => "first-order chain over clustered training frames",
            System::ShapedNoise => "Gaussian log-mel with the reference band statistics",
        }
    }
}

/// What an evaluation is asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    pub model_dir: PathBuf,
    /// The reference set (AudioFolder, e.g. `data/corpus/test`).
    pub reference: PathBuf,
    /// Training audio for the Markov chain; `None` looks for a `train` directory beside the
    /// reference set and leaves the baseline out when there is none.
    pub train: Option<PathBuf>,
    pub out: PathBuf,
    /// Number of reference clips.
    pub n: usize,
    pub tasks: Vec<EvalTask>,
    /// Clip length; `None` uses the model's window (one window per clip).
    pub seconds: Option<f64>,
    /// Base seed: clip `i` is generated with `seed + i`.
    pub seed: u64,
    /// Sampling steps; `None` uses the model's default.
    pub steps: Option<usize>,
    /// The musicnn asset directory; `None` finds it like the other assets.
    pub musicnn: Option<PathBuf>,
    /// Include the baselines (dice game, Markov chain, shaped noise, unprompted model).
    pub baselines: bool,
    /// Clusters of the Markov chain.
    pub markov_states: usize,
    /// Training clips the Markov chain is fitted on.
    pub markov_clips: usize,
    pub resamples: usize,
    /// The vocoder directory every system converts with; `None` converts with Griffin-Lim.
    pub vocoder: Option<PathBuf>,
}

impl Options {
    pub fn new(model_dir: PathBuf, reference: PathBuf, out: PathBuf) -> Self {
        Self {
            model_dir,
            reference,
            train: None,
            out,
            n: 128,
            tasks: EvalTask::ALL.to_vec(),
            seconds: None,
            seed: 0,
            steps: None,
            musicnn: None,
            baselines: true,
            markov_states: 64,
            markov_clips: 200,
            resamples: crate::stats::BOOTSTRAP_RESAMPLES,
            vocoder: None,
        }
    }
}

/// The settings an evaluation directory was made with; a resumed run must match them, since
/// the cached audio and analyses depend on every one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    pub model_id: String,
    pub model_sha256: String,
    pub reference: String,
    pub clips: usize,
    pub seconds: f64,
    pub sample_rate: u32,
    pub tasks: Vec<EvalTask>,
    pub systems: Vec<System>,
    pub seed: u64,
    pub steps: usize,
    pub sampler: String,
    pub cfg: f32,
    pub griffin_lim_iters: usize,
    /// What turns every system's log-mel into audio: `vocoder ID (sha256 ...)` or
    /// `griffin-lim (N iterations)`.
    #[serde(default)]
    pub conversion: String,
    pub patch_hop_frames: usize,
    pub markov_states: usize,
    pub markov_clips: usize,
}

/// Progress of a run, for the caller to show.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A stage of `total` steps begins.
    Stage { name: String, total: usize },
    /// One step of the current stage is done.
    Step,
    /// Something worth saying.
    Note(String),
    /// Something wrong with the evaluation the user must see (printed even when quiet).
    Warning(String),
}

/// The analysis of one clip of one system (cached as JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClipAnalysis {
    /// musicnn MTT tag probabilities averaged over patches `[50]`.
    pub tags: Vec<f32>,
    /// musicnn penultimate embedding of every patch `[patches][200]`.
    pub embeddings: Vec<Vec<f32>>,
    pub tempo: Option<f64>,
    /// The estimated key, as "A minor".
    pub key: Option<String>,
    /// One entry per seam of an edit.
    pub seams: Vec<SeamMeasure>,
}

/// Distances across one seam of an edit, and at the same time in the untouched reference.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SeamMeasure {
    pub statistics: Option<f64>,
    pub statistics_reference: Option<f64>,
    pub embedding: f64,
    pub embedding_reference: f64,
}

/// Patch hop of the judge in the evaluation: one second (musicnn's `input_overlap=1`), so a
/// 5.9 s clip gives three overlapping 3 s patches.
pub const PATCH_HOP_FRAMES: usize = 61;

/// Longest window of the seam embeddings on each side (musicnn's patch).
pub const SEAM_EMBEDDING_SECONDS: f64 = 3.0;

/// Everything the metrics need, per system in row order.
pub struct Results {
    pub settings: Settings,
    pub clips: Vec<Clip>,
    pub systems: Vec<(System, Vec<ClipAnalysis>)>,
    /// Spectral convergence and log-spectral distance of the oracle per clip.
    pub conversion: Vec<(f64, f64)>,
    pub warnings: Vec<String>,
    pub notes: Vec<String>,
    /// Reference clips whose content hash is among the model's training clips.
    pub overlap: Option<usize>,
    /// The model's held-out diffusion loss per task, as training logged it, and its step.
    pub heldout_loss: BTreeMap<String, f64>,
    pub heldout_step: Option<u64>,
}

/// Runs the evaluation and writes the report into `opts.out`.
pub fn run(opts: &Options, events: &mut (dyn FnMut(Event) + Send)) -> Result<Report> {
    let started = Instant::now();
    let results = collect(opts, events)?;
    let report = crate::metrics::compute(&results, opts, started.elapsed().as_secs_f64(), events)?;
    crate::report::write(&opts.out, &report)?;
    Ok(report)
}

/// Steps 1-3: every system's audio and analysis for every clip.
pub fn collect(opts: &Options, events: &mut (dyn FnMut(Event) + Send)) -> Result<Results> {
    if opts.n < 2 {
        return Err(EvalError::invalid("n", "the metrics need at least 2 clips"));
    }
    // 1a. Model, judge.
    events(Event::Stage {
        name: "loading".into(),
        total: 0,
    });
    let vocoder = opts
        .vocoder
        .as_deref()
        .map(musicdiff_vocoder::Vocoder::load)
        .transpose()?;
    let generator = Generator::load(&opts.model_dir)?.with_vocoder(vocoder.clone())?;
    let vocoder = vocoder.as_ref();
    let meta = generator.meta().clone();
    let sr = generator.sample_rate();
    let window_seconds =
        (meta.model.frames * meta.data.hop_length) as f64 / meta.data.sample_rate as f64;
    let seconds = opts
        .seconds
        .unwrap_or((window_seconds * 10.0).floor() / 10.0);
    if !(seconds.is_finite() && (3.0..=60.0).contains(&seconds)) {
        return Err(EvalError::invalid(
            "seconds",
            format!("{seconds} must be between 3 (the judge's patch) and 60"),
        ));
    }
    let length = (seconds * sr as f64).round() as usize;
    let musicnn_dir = Musicnn::locate(opts.musicnn.as_deref())?;
    let judge = Musicnn::load(&musicnn_dir)?;
    let extractor = LogMelExtractor::new(meta.data.spectrogram())?;

    let mut systems = vec![System::Reference, System::Oracle];
    systems.extend(opts.tasks.iter().map(|&t| System::Model(t)));
    // The Markov chain's audio: --train (which must hold some), else train/ beside the
    // reference when it holds any; listed once, here.
    let train_audio = match &opts.train {
        Some(dir) => {
            let files = audio_files(dir)?;
            if files.is_empty() {
                return Err(EvalError::invalid(
                    "train",
                    format!("{} holds no audio file for the Markov chain", dir.display()),
                ));
            }
            Some((dir.clone(), files))
        }
        None => opts.reference.parent().and_then(|p| {
            let dir = p.join("train");
            let files = audio_files(&dir).ok()?;
            (!files.is_empty()).then_some((dir, files))
        }),
    };
    let mut warnings = Vec::new();
    let mut notes = Vec::new();
    if opts.baselines {
        systems.push(System::Unprompted);
        systems.push(System::DiceGame);
        if train_audio.is_some() {
            systems.push(System::MarkovChain);
        } else {
            let w = format!(
                "no training audio given (--train) and no train/ beside {}: the Markov-chain baseline is left out",
                opts.reference.display()
            );
            warn(events, &mut warnings, w);
        }
        systems.push(System::ShapedNoise);
    }
    let steps = opts.steps.unwrap_or(meta.sampling.steps);
    let settings = Settings {
        model_id: meta.id.clone(),
        model_sha256: meta.weights.sha256.clone(),
        reference: std::path::absolute(&opts.reference)
            .unwrap_or_else(|_| opts.reference.clone())
            .display()
            .to_string(),
        clips: opts.n,
        seconds,
        sample_rate: sr,
        tasks: opts.tasks.clone(),
        systems: systems.clone(),
        seed: opts.seed,
        steps,
        sampler: format!("{:?}", meta.sampling.sampler),
        cfg: meta.sampling.cfg,
        griffin_lim_iters: meta.sampling.griffin_lim_iters,
        conversion: match vocoder.as_ref().and_then(|v| v.meta()) {
            Some(m) => format!("vocoder {} (sha256 {})", m.id, &m.weights.sha256[..12]),
            None => format!(
                "griffin-lim ({} iterations)",
                meta.sampling.griffin_lim_iters
            ),
        },
        patch_hop_frames: PATCH_HOP_FRAMES,
        markov_states: opts.markov_states,
        markov_clips: opts.markov_clips,
    };
    // 1b. Reference clips (before anything is written: a bad reference leaves no report).
    events(Event::Stage {
        name: "reference".into(),
        total: opts.n,
    });
    let loaded = reference::load(&opts.reference, opts.n, sr, length, &mut |_, _| {
        events(Event::Step)
    })?;
    for (path, why) in &loaded.skipped {
        events(Event::Note(format!("skipped {}: {why}", path.display())));
    }
    if loaded.clips.len() < opts.n {
        let w = format!(
            "{} holds {} usable clips of at least {seconds:.1} s; evaluating {} instead of {}",
            opts.reference.display(),
            loaded.clips.len(),
            loaded.clips.len(),
            opts.n
        );
        warn(events, &mut warnings, w);
    }
    let clips = loaded.clips;
    open_report_dir(&opts.out, &settings)?;

    // 1c. The reference must not be training data.
    let overlap = match training_hashes(&opts.model_dir)? {
        Some(trained) => {
            let n = clips
                .iter()
                .filter(|c| trained.contains(&c.content_hash))
                .count();
            if n > 0 {
                let w = format!(
                    "WARNING: {n} of the {} reference clips are among the model's {} training clips; a test on training data is not a test",
                    clips.len(),
                    trained.len()
                );
                warn(events, &mut warnings, w);
            }
            Some(n)
        }
        None => {
            let w = format!(
                "{} records no training-clip hashes (exported before they were recorded): the reference set could not be checked for overlap with the training data",
                opts.model_dir.display()
            );
            warn(events, &mut warnings, w);
            None
        }
    };

    // 2. Baseline material.
    let log_mels: Vec<Matrix<f32>> = clips.iter().map(|c| extractor.log_mel(&c.audio)).collect();
    let frames = log_mels[0].cols();
    let (band_mean, band_std) = baselines::band_statistics(&log_mels);
    let markov = match (&train_audio, systems.contains(&System::MarkovChain)) {
        (Some((dir, files)), true) => {
            events(Event::Stage {
                name: "markov".into(),
                total: opts.markov_clips,
            });
            let chain = fit_markov(files, opts, &extractor, sr, events)?;
            notes.push(format!(
                "Markov chain: {} states fitted on up to {} clips of {}",
                chain.states(),
                opts.markov_clips,
                dir.display()
            ));
            Some(chain)
        }
        _ => None,
    };
    let pool: Vec<PoolClip> = clips
        .iter()
        .map(|c| PoolClip {
            audio: &c.audio,
            bpm: c.bpm.unwrap_or(0.0),
            beats_per_bar: c.beats_per_bar,
        })
        .collect();

    // 2-3. Audio and analysis, system by system.
    let gl_iters = meta.sampling.griffin_lim_iters;
    let mut out = Vec::new();
    let mut timings = Vec::new();
    for &system in &systems {
        let name = system.name();
        let system_started = Instant::now();
        events(Event::Stage {
            name: name.clone(),
            total: clips.len(),
        });
        // Clips in parallel (generation and the judge each keep about one core busy); each
        // clip's result depends only on its index and seed, so the order of work does not
        // matter.
        let produced_here = AtomicUsize::new(0);
        let step = Mutex::new(&mut *events);
        let one = |i: usize| -> Result<ClipAnalysis> {
            let clip = &clips[i];
            let seed = opts.seed + i as u64;
            let wav = opts
                .out
                .join("audio")
                .join(&name)
                .join(format!("{}.wav", clip.id));
            let cache = opts
                .out
                .join("cache")
                .join(&name)
                .join(format!("{}.json", clip.id));
            if let Some(a) = read_cache(&cache)?
                && wav.is_file()
            {
                (step.lock().expect("no panic while reporting"))(Event::Step);
                return Ok(a);
            }
            let produced = match system {
                System::Reference => clip.audio.clone(),
                System::Oracle => {
                    baselines::convert(&extractor, &log_mels[i], length, vocoder, gl_iters, seed)?
                }
                System::Model(task) => {
                    let task = match task {
                        EvalTask::Generate => Task::Generate {
                            seconds: seconds as f32,
                        },
                        EvalTask::Fill => {
                            let s = task.seams(length);
                            Task::Fill {
                                audio: clip.audio.clone(),
                                from: s[0] as f32 / sr as f32,
                                to: s[1] as f32 / sr as f32,
                            }
                        }
                        EvalTask::Continue => {
                            let keep = task.seams(length)[0];
                            Task::Continue {
                                audio: clip.audio[..keep].to_vec(),
                                seconds: (length - keep) as f32 / sr as f32,
                            }
                        }
                    };
                    generate(&generator, task, &clip.caption, seed, steps)?
                }
                System::Unprompted => generate(
                    &generator,
                    Task::Generate {
                        seconds: seconds as f32,
                    },
                    "",
                    seed,
                    steps,
                )?,
                System::DiceGame => {
                    let raw = baselines::dice_game(&pool, Some(i), length, sr, seed)?;
                    baselines::convert(
                        &extractor,
                        &extractor.log_mel(&raw),
                        length,
                        vocoder,
                        gl_iters,
                        seed,
                    )?
                }
                System::MarkovChain => {
                    let chain = markov
                        .as_ref()
                        .expect("the chain exists when its system does");
                    baselines::convert(
                        &extractor,
                        &chain.sample(frames, seed),
                        length,
                        vocoder,
                        gl_iters,
                        seed,
                    )?
                }
                System::ShapedNoise => {
                    let lm = baselines::shaped_noise(&band_mean, &band_std, frames, seed);
                    baselines::convert(&extractor, &lm, length, vocoder, gl_iters, seed)?
                }
            };
            let audio = fit_length(quantise(&produced), length);
            create_parent(&wav)?;
            audio::write_wav(&wav, &audio, sr, WavFormat::Pcm16)?;
            let seam_task = match system {
                System::Model(t) => Some(t),
                _ => None,
            };
            let a = analyse(
                &judge,
                &extractor,
                &audio,
                sr,
                clip,
                &log_mels[i],
                seam_task,
            )?;
            create_parent(&cache)?;
            write_cache(&cache, &a)?;
            produced_here.fetch_add(1, Ordering::Relaxed);
            (step.lock().expect("no panic while reporting"))(Event::Step);
            Ok(a)
        };
        let analyses = (0..clips.len())
            .into_par_iter()
            .map(one)
            .collect::<Result<Vec<_>>>()?;
        let produced_here = produced_here.into_inner();
        if produced_here > 0 {
            timings.push(format!(
                "{name} {:.1} s ({produced_here} clips)",
                system_started.elapsed().as_secs_f64()
            ));
        }
        out.push((system, analyses));
    }
    if !timings.is_empty() {
        notes.push(format!(
            "wall time to produce and analyse the new clips: {}",
            timings.join(", ")
        ));
    }
    // Conversion error of the oracle against the reference, on the model's STFT.
    let stft = extractor.stft();
    let conversion = clips
        .iter()
        .map(|c| -> Result<(f64, f64)> {
            let name = System::Oracle.name();
            let wav = opts
                .out
                .join("audio")
                .join(&name)
                .join(format!("{}.wav", c.id));
            let oracle = audio::load_mono(&wav, sr)?;
            let reference = stft.forward(&quantise(&c.audio)).magnitude();
            let estimate = stft.forward(&fit_length(oracle, length)).magnitude();
            Ok((
                musicdiff_dsp::metrics::spectral_convergence(&reference, &estimate),
                musicdiff_dsp::metrics::log_spectral_distance(&reference, &estimate),
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Results {
        settings,
        clips,
        systems: out,
        conversion,
        warnings,
        notes,
        overlap,
        heldout_loss: meta.training.eval_loss.clone(),
        heldout_step: meta.training.eval_step,
    })
}

/// Shows a warning now and keeps it for the report.
fn warn(events: &mut dyn FnMut(Event), warnings: &mut Vec<String>, w: String) {
    events(Event::Warning(w.clone()));
    warnings.push(w);
}

/// One request to the model with the evaluation's fixed settings.
fn generate(
    generator: &Generator,
    task: Task,
    prompt: &str,
    seed: u64,
    steps: usize,
) -> Result<Vec<f32>> {
    let mut req: Request = generator.request(task, prompt);
    req.seed = seed;
    req.steps = steps;
    let out = generator.run(&req, &mut |_| {})?;
    Ok(out.audio)
}

/// Samples as a 16-bit WAV holds them, so that a resumed run analyses exactly what a fresh
/// one did.
fn quantise(samples: &[f32]) -> Vec<f32> {
    samples
        .iter()
        .map(|&v| audio::to_pcm16(v) as f32 / 32768.0)
        .collect()
}

/// Cut or zero-pad to `length` samples.
fn fit_length(mut v: Vec<f32>, length: usize) -> Vec<f32> {
    v.resize(length, 0.0);
    v
}

/// Step 3 for one clip.
fn analyse(
    judge: &Musicnn,
    extractor: &LogMelExtractor,
    audio: &[f32],
    sr: u32,
    clip: &Clip,
    clip_log_mel: &Matrix<f32>,
    task: Option<EvalTask>,
) -> Result<ClipAnalysis> {
    let analysis = judge.analyse(audio, sr, PATCH_HOP_FRAMES)?;
    let tempo = estimate_tempo(audio, sr).ok().map(|t| t.bpm);
    let key = estimate_key(audio, sr).ok().map(|k| k.key.to_string());
    let mut seams = Vec::new();
    if let Some(task) = task {
        let mine = extractor.log_mel(audio);
        let hop = extractor.config().hop_length;
        let window = (SEAM_WINDOW_SECONDS * sr as f64 / hop as f64).round() as usize;
        let side = (SEAM_EMBEDDING_SECONDS * sr as f64) as usize;
        for s in task.seams(audio.len()) {
            let frame = s / hop;
            let embed = |x: &[f32]| -> Result<f64> {
                let before = judge.analyse(&x[s.saturating_sub(side)..s], sr, PATCH_HOP_FRAMES)?;
                let after = judge.analyse(&x[s..(s + side).min(x.len())], sr, PATCH_HOP_FRAMES)?;
                Ok(seams::embedding_distance(
                    &before.embedding(),
                    &after.embedding(),
                ))
            };
            seams.push(SeamMeasure {
                statistics: seams::statistics_distance(&mine, frame, window),
                statistics_reference: seams::statistics_distance(clip_log_mel, frame, window),
                embedding: embed(audio)?,
                embedding_reference: embed(&clip.audio)?,
            });
        }
    }
    Ok(ClipAnalysis {
        tags: analysis.tags(),
        embeddings: analysis
            .patches
            .iter()
            .map(|p| p.penultimate.clone())
            .collect(),
        tempo,
        key,
        seams,
    })
}

/// Every audio file below `dir`, sorted: the Markov chain needs frames, not captions.
fn audio_files(dir: &Path) -> Result<Vec<PathBuf>> {
    Ok(audio::audio_files(dir)?)
}

/// Fits the Markov chain on up to `opts.markov_clips` of `paths`, spread over the set.
fn fit_markov(
    paths: &[PathBuf],
    opts: &Options,
    extractor: &LogMelExtractor,
    sr: u32,
    events: &mut dyn FnMut(Event),
) -> Result<MarkovChain> {
    let mut spectrograms = Vec::new();
    for i in reference::spread(paths.len(), opts.markov_clips) {
        let samples = audio::load_mono(&paths[i], sr)?;
        spectrograms.push(extractor.log_mel(&samples));
        events(Event::Step);
    }
    MarkovChain::fit(&spectrograms, opts.markov_states, opts.seed)
}

/// Hashes of the clips the model was trained on, from `MODEL/training-clips.txt`
/// ([`musicdiff_pipeline::model_dir::TRAINING_CLIPS`]: one lower-case hex SHA-256 per line), or `None` when the model does not record them.
pub fn training_hashes(model_dir: &Path) -> Result<Option<HashSet<String>>> {
    Ok(read_training_clips(model_dir)?.map(|h| h.into_iter().collect()))
}

fn create_parent(path: &Path) -> Result<()> {
    let dir = path.parent().expect("report files live in a directory");
    std::fs::create_dir_all(dir).map_err(|e| EvalError::io(dir, e))
}

/// Creates the report directory, or checks that the evaluation in it was made with the same
/// settings (its cache would be wrong otherwise).
fn open_report_dir(out: &Path, settings: &Settings) -> Result<()> {
    std::fs::create_dir_all(out).map_err(|e| EvalError::io(out, e))?;
    let path = out.join("settings.json");
    match std::fs::read(&path) {
        Ok(bytes) => {
            let old: Settings =
                serde_json::from_slice(&bytes).map_err(|e| EvalError::ReportDir {
                    path: path.clone(),
                    detail: format!("not an evaluation's settings ({e}); use another --out"),
                })?;
            if &old != settings {
                return Err(EvalError::ReportDir {
                    path: out.to_path_buf(),
                    detail: format!(
                        "holds an evaluation with other settings ({}); use another --out or delete it",
                        differences(&old, settings)
                    ),
                });
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let json = serde_json::to_vec_pretty(settings).expect("settings serialise");
            Ok(write_bytes(&path, &json)?)
        }
        Err(e) => Err(EvalError::io(path, e)),
    }
}

/// The settings that differ, by name.
fn differences(a: &Settings, b: &Settings) -> String {
    let (a, b) = (
        serde_json::to_value(a).expect("settings serialise"),
        serde_json::to_value(b).expect("settings serialise"),
    );
    let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else {
        return String::new();
    };
    a.iter()
        .filter(|(k, v)| b.get(*k) != Some(v))
        .map(|(k, v)| {
            format!(
                "{k}: {v} there, {} now",
                b.get(k).cloned().unwrap_or_default()
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn read_cache(path: &Path) -> Result<Option<ClipAnalysis>> {
    match std::fs::read(path) {
        // A damaged cache entry (a crash mid-write cannot make one: writes are atomic) is
        // recomputed rather than trusted.
        Ok(bytes) => Ok(serde_json::from_slice(&bytes).ok()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(EvalError::io(path, e)),
    }
}

fn write_cache(path: &Path, a: &ClipAnalysis) -> Result<()> {
    let json = serde_json::to_vec(a).expect("analyses serialise");
    Ok(write_bytes(path, &json)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasks_parse_and_place_their_seams() {
        assert_eq!(EvalTask::parse("fill").unwrap(), EvalTask::Fill);
        assert!(EvalTask::parse("paint").unwrap_err().is_bad_input());
        assert_eq!(EvalTask::Fill.seams(90), vec![30, 60]);
        assert_eq!(EvalTask::Continue.seams(90), vec![45]);
        assert!(EvalTask::Generate.seams(90).is_empty());
    }

    #[test]
    fn system_names_are_distinct() {
        let all = [
            System::Reference,
            System::Oracle,
            System::Model(EvalTask::Generate),
            System::Model(EvalTask::Fill),
            System::Model(EvalTask::Continue),
            System::Unprompted,
            System::DiceGame,
            System::MarkovChain,
            System::ShapedNoise,
        ];
        let names: HashSet<String> = all.iter().map(|s| s.name()).collect();
        assert_eq!(names.len(), all.len());
    }

    #[test]
    fn quantise_matches_what_a_16_bit_wav_gives_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.wav");
        let v = vec![0.1f32, -0.333, 0.99999, -1.0, 1.5];
        audio::write_wav(&path, &v, 8000, WavFormat::Pcm16).unwrap();
        let back = audio::load_mono(&path, 8000).unwrap();
        assert_eq!(quantise(&v), back);
    }

    #[test]
    fn a_report_dir_with_other_settings_is_refused_and_the_same_is_resumed() {
        let dir = tempfile::tempdir().unwrap();
        let s = Settings {
            model_id: "m".into(),
            model_sha256: "00".into(),
            reference: "/r".into(),
            clips: 4,
            seconds: 5.0,
            sample_rate: 22050,
            tasks: vec![EvalTask::Generate],
            systems: vec![System::Reference],
            seed: 0,
            steps: 20,
            sampler: "DpmPP2M".into(),
            cfg: 3.0,
            griffin_lim_iters: 32,
            conversion: "griffin-lim (32 iterations)".into(),
            patch_hop_frames: PATCH_HOP_FRAMES,
            markov_states: 64,
            markov_clips: 200,
        };
        open_report_dir(dir.path(), &s).unwrap();
        open_report_dir(dir.path(), &s).unwrap();
        let other = Settings { clips: 8, ..s };
        let err = open_report_dir(dir.path(), &other).unwrap_err();
        assert!(err.is_bad_input());
        assert!(err.to_string().contains("clips: 4 there, 8 now"), "{err}");
    }

    #[test]
    fn training_hashes_are_read_one_per_line_and_absent_is_none() {
        let dir = tempfile::tempdir().unwrap();
        assert!(training_hashes(dir.path()).unwrap().is_none());
        std::fs::write(
            dir.path()
                .join(musicdiff_pipeline::model_dir::TRAINING_CLIPS),
            "# clips\nab\n\ncd\n",
        )
        .unwrap();
        let h = training_hashes(dir.path()).unwrap().unwrap();
        assert_eq!(h.len(), 2);
        assert!(h.contains("ab") && h.contains("cd"));
    }
}
