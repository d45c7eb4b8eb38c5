//! One entry point for the three tasks, shared by the CLI and the server: [`Generator::load`]
//! reads a model directory (and the text encoder) once; [`Generator::run`] serves a
//! [`Request`] to generate from a prompt, fill a span of the user's audio, or continue it.
//!
//! All three are one procedure over a "piece": the log-mel timeline of the output, with some
//! frames known (taken from the input audio) and the rest to be generated, as JEN-1 trains one
//! model for all tasks with masks (Li et al. 2023).
//! 1. Lay out the timeline: the input's normalised log-mel where it is known, and a per-frame
//!    known flag (a frame is known when its whole STFT window lies in kept audio).
//! 2. Plan windows of the model's length over the tokens holding frames to generate (a piece
//!    shorter than one window is padded to one and cut afterwards; padding after the piece
//!    needs no window of its own): each starts `overlap` before the first unknown token, so
//!    every window after the first continues from context it can see (windowed continuation,
//!    as Jukebox and JEN-1 extend beyond the training length).
//! 3. Sample each window with the chosen sampler under classifier-free guidance; known tokens
//!    are clamped ([`crate::denoise`]); generated tokens become context for the next window.
//! 4. Log-mel -> audio: the neural vocoder (`musicdiff_vocoder`) when the generator has one;
//!    else magnitude (NNLS) -> Griffin-Lim, anchored on the input's complex STFT in the known
//!    frames so that the new phase joins the old audio.
//! 5. Splice in the waveform domain: kept audio is copied from the input bit for bit; a filled
//!    span fades in and out over [`CROSSFADE_SECONDS`] inside the span; a continuation takes
//!    the step between the input's last sample and the rebuilt audio out over the same length
//!    after the seam ([`join`]). [`Generator::run`] then refuses output with NaN or infinite
//!    samples ([`check_finite`]).
//!
//! The functions below carry these numbers (`1c`, `3b`, ...).

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::prelude::*;
use musicdiff_common::Rng;
use musicdiff_diffusion::sampler::{self, SamplerKind};
use musicdiff_dsp::controls::Controls;
use musicdiff_dsp::features::LogMelExtractor;
use musicdiff_dsp::griffin_lim::{self, Anchor, GriffinLimConfig, PhaseInit};
use musicdiff_dsp::matrix::Matrix;
use musicdiff_dsp::stft::Stft;
use musicdiff_model::patch::{patchify, unpatchify};
use musicdiff_model::{CondExample, Conditioning, Dit, DitConfig, Keep};
use musicdiff_text::TextEncoder;
use musicdiff_vocoder::Vocoder;
use serde::Serialize;

use crate::denoise::{Guidance, GuidedDenoiser};
use crate::error::{PipelineError, Result};
use crate::model_dir::{self, DataInfo, ModelMeta};
use musicdiff_dsp::normalise::Normaliser;

/// Length of the fade at each seam of a filled span.
pub const CROSSFADE_SECONDS: f32 = 0.02;
/// Longest output accepted (ten minutes); longer requests are almost certainly typos.
pub const MAX_SECONDS: f32 = 600.0;
/// Shortest generated duration accepted.
pub const MIN_SECONDS: f32 = 0.1;
/// Most sampling steps accepted.
pub const MAX_STEPS: usize = 1000;
/// Largest guidance scale accepted.
pub const MAX_GUIDANCE: f32 = 50.0;

/// What to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Task {
    /// New audio of `seconds` from the prompt alone.
    Generate { seconds: f32 },
    /// Regenerate `[from, to)` seconds of `audio` (mono, at the model's sample rate).
    Fill { audio: Vec<f32>, from: f32, to: f32 },
    /// Append `seconds` of new audio to `audio` (mono, at the model's sample rate).
    Continue { audio: Vec<f32>, seconds: f32 },
}

impl Task {
    pub fn name(&self) -> &'static str {
        match self {
            Task::Generate { .. } => "generate",
            Task::Fill { .. } => "fill",
            Task::Continue { .. } => "continue",
        }
    }
}

/// A generation request. [`Request::new`] fills the sampling settings from the model's
/// defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub task: Task,
    pub prompt: String,
    pub genre: Option<String>,
    pub artist: Option<String>,
    /// Tempo, key and meter for models with musical controls: what the prompt states
    /// ([`Request::new`] reads it), overridden by whatever the caller sets.
    pub controls: Controls,
    pub seed: u64,
    pub steps: usize,
    pub sampler: SamplerKind,
    pub guidance: Guidance,
    /// Context carried into each following window, seconds.
    pub overlap_seconds: f32,
    pub griffin_lim_iters: usize,
}

impl Request {
    /// A request with the model's default sampling settings and seed 0.
    pub fn new(task: Task, prompt: impl Into<String>, meta: &ModelMeta) -> Self {
        let d = &meta.sampling;
        let prompt = prompt.into();
        Self {
            task,
            controls: Controls::from_prompt(&prompt),
            prompt,
            genre: None,
            artist: None,
            seed: 0,
            steps: d.steps,
            sampler: d.sampler,
            guidance: Guidance::new(d.cfg),
            overlap_seconds: d.overlap_seconds,
            griffin_lim_iters: d.griffin_lim_iters,
        }
    }
}

/// Progress of [`Generator::run`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Encoding the prompt and fields.
    Encoding,
    /// Denoiser evaluation `done` of `total` over all windows.
    Sampling { done: usize, total: usize },
    /// Griffin-Lim iteration `done` of `total` (the neural vocoder reports 0 of 1, then 1 of 1).
    Vocoding { done: usize, total: usize },
}

/// Wall time of each stage, seconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Timings {
    pub text: f64,
    pub sampling: f64,
    pub vocoder: f64,
    pub total: f64,
}

/// The result of a request.
#[derive(Debug, Clone)]
pub struct Output {
    /// Mono audio at `sample_rate`.
    pub audio: Vec<f32>,
    pub sample_rate: u32,
    /// Log-mel of `audio` (the model's definition), for pictures.
    pub log_mel: Matrix<f32>,
    /// Seconds of new audio (the whole output, the span, or the extension).
    pub generated_seconds: f64,
    /// The samples of `audio` that are new.
    pub generated: Range<usize>,
    /// Model windows sampled.
    pub windows: usize,
    /// What turned the log-mel into audio: `vocoder ID` or `griffin-lim (N iterations)`.
    pub conversion: String,
    pub timings: Timings,
}

impl Output {
    pub fn seconds(&self) -> f64 {
        self.audio.len() as f64 / self.sample_rate as f64
    }

    /// Wall time over seconds of new audio; below 1 is faster than real time.
    pub fn real_time_factor(&self) -> f64 {
        self.timings.total / self.generated_seconds.max(1e-9)
    }

    /// The new audio is silent: every sample would be 0 in 16-bit PCM (below -96 dBFS).
    pub fn generated_is_silent(&self) -> bool {
        is_silent(&self.audio[self.generated.clone()])
    }
}

/// Every sample rounds to 0 in 16-bit PCM.
pub fn is_silent(samples: &[f32]) -> bool {
    samples.iter().all(|v| v.abs() < 0.5 / 32768.0)
}

/// Refuses output with NaN or infinite samples (a broken model: nothing else produces them,
/// inputs with such samples are refused before sampling). `model_dir` names the model.
pub fn check_finite(audio: &[f32], model_dir: &Path) -> Result<()> {
    let count = audio.iter().filter(|v| !v.is_finite()).count();
    if count > 0 {
        return Err(PipelineError::NonFiniteOutput {
            dir: model_dir.to_path_buf(),
            count,
            total: audio.len(),
        });
    }
    Ok(())
}

/// A loaded model, ready to serve requests.
pub struct Generator {
    meta: ModelMeta,
    dir: PathBuf,
    model: Dit,
    encoder: TextEncoder,
    /// The neural vocoder; Griffin-Lim without one.
    vocoder: Option<Vocoder>,
    device: Device,
}

impl Generator {
    /// Reads `model_dir` (`model.json` + `model.safetensors`, hash-checked) and the MiniLM
    /// encoder installed by `scripts/fetch-assets.sh` (`$MUSICDIFF_ASSETS/minilm`).
    pub fn load(model_dir: &Path) -> Result<Self> {
        let text = musicdiff_common::assets::minilm()?;
        Self::load_with_text(model_dir, &text)
    }

    /// [`Self::load`] with the MiniLM encoder read from `text_model_dir`.
    pub fn load_with_text(model_dir: &Path, text_model_dir: &Path) -> Result<Self> {
        let device = Device::flex();
        let meta = model_dir::read_meta(model_dir)?;
        let model = model_dir::load_weights(model_dir, &meta, &device)?;
        let encoder = TextEncoder::load(text_model_dir, &device)?;
        if encoder.dim() != meta.model.text_dim {
            return Err(PipelineError::file(
                model_dir.join(model_dir::META_FILE),
                format!(
                    "the model takes {}-wide text states but {} gives {}",
                    meta.model.text_dim,
                    text_model_dir.display(),
                    encoder.dim()
                ),
            ));
        }
        Ok(Self {
            meta,
            dir: model_dir.to_path_buf(),
            model,
            encoder,
            vocoder: None,
            device,
        })
    }

    /// This generator converting with `vocoder` (`None`: Griffin-Lim). The vocoder must read
    /// the model's log-mel (sample rate, FFT size, hop, mel bands).
    pub fn with_vocoder(mut self, vocoder: Option<Vocoder>) -> Result<Self> {
        if let Some(v) = &vocoder {
            check_vocoder(v, &self.meta.data)?;
        }
        self.vocoder = vocoder;
        Ok(self)
    }

    pub fn vocoder(&self) -> Option<&Vocoder> {
        self.vocoder.as_ref()
    }

    pub fn meta(&self) -> &ModelMeta {
        &self.meta
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn sample_rate(&self) -> u32 {
        self.meta.data.sample_rate
    }

    /// A request for `task` with this model's default settings.
    pub fn request(&self, task: Task, prompt: impl Into<String>) -> Request {
        Request::new(task, prompt, &self.meta)
    }

    /// Serves one request; `progress` hears about every stage. Output with NaN or infinite
    /// samples is an error ([`check_finite`]).
    pub fn run(&self, req: &Request, progress: &mut dyn FnMut(Progress)) -> Result<Output> {
        let out = run_with(
            &self.model,
            &self.encoder,
            &self.meta.data,
            req,
            self.vocoder.as_ref(),
            &self.device,
            progress,
        )?;
        check_finite(&out.audio, &self.dir)?;
        Ok(out)
    }
}

fn check_seconds(field: &'static str, s: f32) -> Result<()> {
    if !s.is_finite() || s < MIN_SECONDS {
        return Err(PipelineError::request(
            field,
            format!("{s} s; it must be at least {MIN_SECONDS} s"),
        ));
    }
    if s > MAX_SECONDS {
        return Err(PipelineError::request(
            field,
            format!("{s} s is longer than the limit of {MAX_SECONDS} s"),
        ));
    }
    Ok(())
}

/// The part of the output that is sampled and vocoded, in samples. Long inputs are cropped to
/// the region that matters (the span of a fill or the end of a continued input, with a model
/// window of context), so that editing a long recording costs what the edit costs.
struct Piece {
    /// Audio of the region on the output timeline (zeros where nothing is known).
    timeline: Vec<f32>,
    /// Per STFT frame of `timeline`: its whole window lies in kept audio.
    known_frames: Vec<bool>,
    /// Where the region starts in the whole output, and the whole output's length (seconds),
    /// for the timing conditioning.
    offset_seconds: f32,
    total_seconds: f32,
    /// How the region's audio goes back into the output.
    assembly: Assembly,
}

/// Splicing of a [`Piece`]'s audio into the output. Sample indices are in the input.
enum Assembly {
    /// The piece is the output.
    Whole,
    /// `input[..start] ++ piece`, the piece starting with `input[start..]` kept exactly.
    Continue { start: usize },
    /// `input[..start] ++ splice(piece) ++ input[end..]`, regenerating `[a, b)`.
    Fill {
        start: usize,
        end: usize,
        a: usize,
        b: usize,
    },
}

/// Checks the sampling settings of `req` (steps, guidance, overlap, Griffin-Lim iterations)
/// against the model's window of `window_seconds`.
fn check_settings(req: &Request, window_seconds: f64) -> Result<()> {
    if req.steps == 0 || req.steps > MAX_STEPS {
        return Err(PipelineError::request(
            "steps",
            format!("{}; it must be between 1 and {MAX_STEPS}", req.steps),
        ));
    }
    for (field, w) in [
        ("cfg", Some(req.guidance.text)),
        ("timing cfg", req.guidance.timing),
    ] {
        if let Some(w) = w
            && !(w.is_finite() && (0.0..=MAX_GUIDANCE).contains(&w))
        {
            return Err(PipelineError::request(
                field,
                format!("{w}; a guidance scale must be between 0 and {MAX_GUIDANCE}"),
            ));
        }
    }
    let o = req.overlap_seconds;
    let o64 = o as f64;
    if !(o64.is_finite() && o64 >= 0.0 && o64 <= 0.75 * window_seconds) {
        // `o` is printed as the f32 it is ("0.3", not "0.30000001192092896").
        return Err(PipelineError::request(
            "overlap",
            format!(
                "{o} s; it must be between 0 and 3/4 of the model's {window_seconds:.2} s window"
            ),
        ));
    }
    if req.griffin_lim_iters > GriffinLimConfig::MAX_ITER {
        return Err(PipelineError::request(
            "griffin-lim iterations",
            format!(
                "{} is above {}",
                req.griffin_lim_iters,
                GriffinLimConfig::MAX_ITER
            ),
        ));
    }
    Ok(())
}

/// Input audio a fill or continuation can work on: not empty, and every sample finite (a NaN
/// in the input would otherwise come out as a broken model's NaN output).
fn check_input(audio: &[f32]) -> Result<()> {
    if audio.is_empty() {
        return Err(PipelineError::request("input", "the input audio is empty"));
    }
    let bad = audio.iter().filter(|v| !v.is_finite()).count();
    if bad > 0 {
        return Err(PipelineError::request(
            "input",
            format!(
                "{bad} of its {} samples are not finite (NaN or infinite)",
                audio.len()
            ),
        ));
    }
    Ok(())
}

/// Sample and frame arithmetic of the model's STFT, for laying out a [`Piece`].
struct Timeline {
    sr: f64,
    hop: usize,
    /// Half the STFT window: a frame covers `[f * hop - half, f * hop + half)`.
    half: usize,
    frame_seconds: f64,
    /// Context kept around an edit: one model window, in samples.
    margin: usize,
}

impl Timeline {
    fn new(data: &DataInfo, window_frames: usize) -> Self {
        Self {
            sr: data.sample_rate as f64,
            hop: data.hop_length,
            half: data.n_fft / 2,
            frame_seconds: data.frame_seconds(),
            margin: window_frames * data.hop_length,
        }
    }

    fn samples(&self, s: f32) -> usize {
        (s as f64 * self.sr).round() as usize
    }

    fn seconds(&self, samples: usize) -> f32 {
        samples as f32 / self.sr as f32
    }

    /// STFT frames of `len` samples (centred frames).
    fn frames(&self, len: usize) -> usize {
        1 + len / self.hop
    }
}

/// Checks the request against the model and lays out the [`Piece`] to sample (step 1).
fn layout(req: &Request, data: &DataInfo, window_frames: usize) -> Result<Piece> {
    check_settings(req, window_frames as f64 * data.frame_seconds())?;
    let t = Timeline::new(data, window_frames);
    match &req.task {
        Task::Generate { seconds } => layout_generate(&t, *seconds),
        Task::Continue { audio, seconds } => layout_continue(&t, audio, *seconds),
        Task::Fill { audio, from, to } => layout_fill(&t, audio, *from, *to),
    }
}

/// 1a. Generation: nothing known.
fn layout_generate(t: &Timeline, seconds: f32) -> Result<Piece> {
    check_seconds("seconds", seconds)?;
    let len = t.samples(seconds);
    Ok(Piece {
        timeline: vec![0.0; len],
        known_frames: vec![false; t.frames(len)],
        offset_seconds: 0.0,
        total_seconds: t.seconds(len),
        assembly: Assembly::Whole,
    })
}

/// 1b. Continuation: the last model window of the input, then `seconds` unknown.
fn layout_continue(t: &Timeline, audio: &[f32], seconds: f32) -> Result<Piece> {
    check_seconds("seconds", seconds)?;
    check_input(audio)?;
    check_seconds("total length", t.seconds(audio.len()) + seconds)?;
    let extra = t.samples(seconds);
    let start = audio.len().saturating_sub(t.margin);
    let kept = audio.len() - start;
    let mut timeline = audio[start..].to_vec();
    timeline.resize(kept + extra, 0.0);
    let known_frames = (0..t.frames(kept + extra))
        .map(|f| f * t.hop + t.half <= kept)
        .collect();
    Ok(Piece {
        timeline,
        known_frames,
        offset_seconds: t.seconds(start),
        total_seconds: t.seconds(audio.len() + extra),
        assembly: Assembly::Continue { start },
    })
}

/// 1c. Fill: the span with a model window of the input on each side (as far as it goes).
fn layout_fill(t: &Timeline, audio: &[f32], from: f32, to: f32) -> Result<Piece> {
    check_input(audio)?;
    check_span(t, audio.len(), from, to)?;
    let (a, b) = (t.samples(from), t.samples(to).min(audio.len()));
    let (start, end) = (a.saturating_sub(t.margin), (b + t.margin).min(audio.len()));
    // Frames of the cropped region that do not touch the span (its ends are the input's ends
    // or a margin away from the span).
    let (ra, rb) = (a - start, b - start);
    let known_frames = (0..t.frames(end - start))
        .map(|f| f * t.hop + t.half <= ra || f * t.hop >= rb + t.half)
        .collect();
    Ok(Piece {
        timeline: audio[start..end].to_vec(),
        known_frames,
        offset_seconds: t.seconds(start),
        total_seconds: t.seconds(audio.len()),
        assembly: Assembly::Fill { start, end, a, b },
    })
}

/// A fill's span `[from, to)` seconds must lie in an input of `len` samples and cover a few
/// frames.
fn check_span(t: &Timeline, len: usize, from: f32, to: f32) -> Result<()> {
    let input_seconds = t.seconds(len);
    if !(from.is_finite() && to.is_finite() && from >= 0.0 && from < to) {
        return Err(PipelineError::request(
            "span",
            format!("--from {from} --to {to}: need 0 <= from < to"),
        ));
    }
    if to > input_seconds + 1e-6 {
        return Err(PipelineError::request(
            "span",
            format!(
                "--from {from} --to {to} ends after the input, which is {input_seconds:.3} s long"
            ),
        ));
    }
    let min_span = (t.frame_seconds * 4.0) as f32;
    if to - from < min_span {
        return Err(PipelineError::request(
            "span",
            format!(
                "{:.3} s is shorter than the minimum of {min_span:.3} s",
                to - from
            ),
        ));
    }
    Ok(())
}

/// The windows (token ranges) to sample, in order. Each starts `context` tokens before the
/// first token still unknown (clamped so that it stays inside the piece at full length); a
/// piece shorter than a window is one window.
pub fn plan_windows(known: &[bool], window: usize, context: usize) -> Vec<(usize, usize)> {
    let n = known.len();
    let mut known = known.to_vec();
    let mut out = vec![];
    while let Some(u) = known.iter().position(|k| !k) {
        let start = if n <= window {
            0
        } else {
            u.saturating_sub(context).min(n - window)
        };
        let end = (start + window).min(n);
        known[start..end].fill(true);
        out.push((start, end));
    }
    out
}

/// Per token of `p` frames (`n_tokens` of them, the last ones possibly past the piece's
/// `known_frames.len()` frames, in the padding):
/// - known: every frame of it is a known frame of the piece (padding is not known); known
///   tokens are clamped while sampling;
/// - settled: it holds a frame of the piece and no frame of the piece still to generate, so no
///   window has to be planned for it. A token partly in the padding after known frames is
///   settled (the padding is cut off); one wholly in the padding is not (a piece shorter than a
///   window is sampled as one window).
fn token_flags(known_frames: &[bool], p: usize, n_tokens: usize) -> (Vec<bool>, Vec<bool>) {
    let frames = known_frames.len();
    let known = (0..n_tokens)
        .map(|j| (j * p..(j + 1) * p).all(|f| f < frames && known_frames[f]))
        .collect();
    let settled = (0..n_tokens)
        .map(|j| {
            j * p < frames
                && known_frames[j * p..((j + 1) * p).min(frames)]
                    .iter()
                    .all(|&k| k)
        })
        .collect();
    (known, settled)
}

/// The piece as the model's tokens: its normalised log-mel, padded to whole tokens and at
/// least one window, cut into patches.
struct Tokens {
    /// `[n_tokens, d]`; sampled tokens are written in as windows finish.
    values: Vec<f32>,
    /// Per token: its value is known (the input's, or sampled by an earlier window).
    known: Vec<bool>,
    /// Per token: needs no window (see [`token_flags`]).
    settled: Vec<bool>,
    d: usize,
}

impl Tokens {
    fn new(
        input_mel: &Matrix<f32>,
        known_frames: &[bool],
        norm: &Normaliser,
        cfg: &DitConfig,
    ) -> Self {
        let (p, n_mels) = (cfg.patch_frames, cfg.n_mels);
        let frames = known_frames.len();
        debug_assert_eq!(input_mel.cols(), frames);
        // A piece shorter than a window is sampled as a whole window and cut: the model was
        // trained on full windows (short clips padded), so that is what it knows.
        let n_tokens = frames.div_ceil(p).max(cfg.tokens());
        let padded = n_tokens * p;
        let mut mel = vec![0.0f32; n_mels * padded]; // normalised [n_mels, padded]
        for m in 0..n_mels {
            mel[m * padded..m * padded + frames].copy_from_slice(input_mel.row(m));
        }
        norm.normalise(&mut mel);
        let (known, settled) = token_flags(known_frames, p, n_tokens);
        Self {
            values: patchify(&mel, n_mels, p),
            known,
            settled,
            d: cfg.patch_dim(),
        }
    }

    /// The values and the known mask (1 known, 0 to generate) of tokens `[start, end)`.
    fn window(&self, start: usize, end: usize) -> (Vec<f32>, Vec<f32>) {
        let values = self.values[start * self.d..end * self.d].to_vec();
        let mask = self.known[start..end]
            .iter()
            .map(|&k| if k { 1.0 } else { 0.0 })
            .collect();
        (values, mask)
    }

    /// Takes the sampled tokens of the window starting at `start` where nothing was known;
    /// they are context for the following windows.
    fn take(&mut self, start: usize, sampled: &[f32]) {
        let d = self.d;
        for j in start..start + sampled.len() / d {
            if !self.known[j] {
                self.values[j * d..(j + 1) * d]
                    .copy_from_slice(&sampled[(j - start) * d..(j - start + 1) * d]);
                self.known[j] = true;
            }
        }
    }

    /// 4a. Back to the piece's log-mel `[n_mels, frames]`: the tokens denormalised, the known
    /// frames exactly the input's.
    fn log_mel(
        &self,
        norm: &Normaliser,
        cfg: &DitConfig,
        input_mel: &Matrix<f32>,
        known_frames: &[bool],
    ) -> Matrix<f32> {
        let n_mels = cfg.n_mels;
        let full = norm.denormalise(&unpatchify(&self.values, n_mels, cfg.patch_frames));
        let mut log_mel = Matrix::<f32>::zeros(n_mels, known_frames.len());
        for m in 0..n_mels {
            let row = log_mel.row_mut(m);
            row.copy_from_slice(&full.row(m)[..known_frames.len()]);
            for (f, v) in row.iter_mut().enumerate() {
                if known_frames[f] {
                    *v = *input_mel.get(m, f);
                }
            }
        }
        log_mel
    }
}

/// Pulls the values of a `[1, L, D]` tensor.
fn floats<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().expect("f32 data")
}

/// The initial noise `x_1` of window `window` of a request with `seed`: `len` standard normal
/// values, the same for the same seed on every machine.
pub fn window_noise(seed: u64, window: usize, len: usize) -> Vec<f32> {
    let mut rng = Rng::for_item(seed, window as u64);
    (0..len).map(|_| rng.normal() as f32).collect()
}

/// The prompt and the genre/artist fields, encoded once for all windows.
struct Prompt {
    tokens: Vec<f32>,
    n_tokens: usize,
    sentence: Vec<f32>,
    genre: Option<Vec<f32>>,
    artist: Option<Vec<f32>>,
}

/// 3a. Encodes the prompt and the fields (an empty field is unconditioned).
fn encode_prompt(encoder: &TextEncoder, req: &Request) -> Result<Prompt> {
    let enc = encoder.encode(&[req.prompt.as_str()])?;
    let n_tokens = enc.tokens.dims()[1];
    let field = |s: &Option<String>| -> Result<Option<Vec<f32>>> {
        Ok(match s.as_deref().map(str::trim) {
            Some(s) if !s.is_empty() => Some(floats(encoder.encode(&[s])?.sentence)),
            _ => None,
        })
    };
    let (tokens, sentence) = (floats(enc.tokens), floats(enc.sentence));
    Ok(Prompt {
        tokens,
        n_tokens,
        sentence,
        genre: field(&req.genre)?,
        artist: field(&req.artist)?,
    })
}

/// What the windows of one request share.
struct WindowSampler<'a> {
    model: &'a Dit,
    device: &'a Device,
    req: &'a Request,
    prompt: Prompt,
    /// Where the piece starts in the output and the output's length, seconds.
    offset_seconds: f32,
    total_seconds: f32,
    /// Frames per token, and seconds per frame.
    patch_frames: usize,
    frame_seconds: f32,
}

impl WindowSampler<'_> {
    /// The conditioning of a window starting at token `start` (its timing is its place in the
    /// whole output).
    fn conditioning(&self, start: usize) -> Result<Conditioning> {
        let p = &self.prompt;
        Ok(Conditioning::from_examples(
            &[CondExample {
                tokens: p.tokens.clone(),
                n_tokens: p.n_tokens,
                sentence: p.sentence.clone(),
                genre: p.genre.clone(),
                artist: p.artist.clone(),
                seconds_start: self.offset_seconds
                    + (start * self.patch_frames) as f32 * self.frame_seconds,
                seconds_total: self.total_seconds,
                controls: self.req.controls,
                keep: Keep::ALL,
            }],
            &self.model.config,
            self.device,
        )?)
    }

    /// 3b. Samples window `w` over tokens `[start, end)` from its own noise, the known tokens
    /// clamped; returns the window's clean tokens. `progress` hears the evaluations done.
    fn sample(
        &self,
        w: usize,
        (start, end): (usize, usize),
        tokens: &Tokens,
        progress: &mut dyn FnMut(usize),
    ) -> Result<Vec<f32>> {
        let (n, d) = (end - start, tokens.d);
        let (known, mask) = tokens.window(start, end);
        let cond = self.conditioning(start)?;
        let noise = window_noise(self.req.seed, w, n * d);
        let req = self.req;
        let mut denoiser = GuidedDenoiser::new(
            self.model,
            &cond,
            known,
            mask,
            [1, n, d],
            req.guidance,
            self.device,
        );
        // The sampler steps on the schedule the denoiser reads the model's output with.
        let schedule = denoiser.objective.schedule;
        Ok(sampler::sample(
            req.sampler,
            &mut denoiser,
            &schedule,
            noise,
            req.steps,
            &mut |i, _| progress(i),
        ))
    }

    /// 3c. Samples `windows` in order, each taking the tokens the earlier ones generated as
    /// context; `progress` hears the evaluations over all windows.
    fn sample_all(
        &self,
        windows: &[(usize, usize)],
        tokens: &mut Tokens,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<()> {
        let per_window = self.req.sampler.evaluations(self.req.steps);
        let total = windows.len() * per_window;
        for (w, &range) in windows.iter().enumerate() {
            let done = w * per_window;
            let sampled = self.sample(w, range, tokens, &mut |i| {
                progress(Progress::Sampling {
                    done: done + i,
                    total,
                })
            })?;
            tokens.take(range.0, &sampled);
        }
        Ok(())
    }
}

/// Refuses a vocoder that reads another log-mel than the model writes.
pub fn check_vocoder(vocoder: &Vocoder, data: &DataInfo) -> Result<()> {
    let c = vocoder.config();
    if (c.sample_rate, c.n_fft, c.hop_length, c.n_mels)
        != (data.sample_rate, data.n_fft, data.hop_length, data.n_mels)
    {
        return Err(PipelineError::request(
            "vocoder",
            format!(
                "vocoder `{}` reads {} mels at {} Hz (FFT {}, hop {}) but the model writes {} mels at {} Hz (FFT {}, hop {})",
                vocoder.id(),
                c.n_mels,
                c.sample_rate,
                c.n_fft,
                c.hop_length,
                data.n_mels,
                data.sample_rate,
                data.n_fft,
                data.hop_length
            ),
        ));
    }
    Ok(())
}

/// How `vocoder` (or Griffin-Lim) is named in outputs.
pub fn conversion_name(vocoder: Option<&Vocoder>, griffin_lim_iters: usize) -> String {
    match vocoder {
        Some(v) => format!("vocoder {}", v.id()),
        None => format!("griffin-lim ({griffin_lim_iters} iterations)"),
    }
}

/// 4b. The piece's audio from its log-mel: the neural vocoder's, or NNLS to magnitudes then
/// Griffin-Lim anchored on the input's complex STFT in the known frames (plain generation has
/// no anchor).
fn vocode(
    extractor: &LogMelExtractor,
    piece: &Piece,
    log_mel: &Matrix<f32>,
    req: &Request,
    vocoder: Option<&Vocoder>,
    progress: &mut dyn FnMut(Progress),
) -> Result<Vec<f32>> {
    if let Some(v) = vocoder {
        progress(Progress::Vocoding { done: 0, total: 1 });
        let audio = v.synthesise(log_mel, Some(piece.timeline.len()))?;
        progress(Progress::Vocoding { done: 1, total: 1 });
        return Ok(audio);
    }
    let spec = extractor.config();
    let magnitude = griffin_lim::log_mel_to_magnitude(spec, extractor.filterbank(), log_mel)?;
    let stft = Stft::<f32>::new(spec.stft())?;
    let anchor_spec = match piece.assembly {
        Assembly::Whole => None,
        _ => Some(stft.forward(&piece.timeline)),
    };
    let anchor = anchor_spec.as_ref().map(|spectrum| Anchor {
        spectrum,
        frames: &piece.known_frames,
    });
    let gl = GriffinLimConfig {
        n_iter: req.griffin_lim_iters,
        momentum: 0.99,
        init: PhaseInit::Random { seed: req.seed },
    };
    let iters = req.griffin_lim_iters;
    Ok(griffin_lim::griffin_lim_anchored(
        &stft,
        &magnitude,
        piece.timeline.len(),
        &gl,
        anchor,
        &mut |i| {
            progress(Progress::Vocoding {
                done: i,
                total: iters,
            })
        },
    )?)
}

/// The new audio `new` of a continuation, which follows `last` (the input's final sample)
/// where the rebuilt audio had `rebuilt_last`: their difference, the step a plain splice
/// would leave at the seam, is added to `new` and taken out linearly over `fade` samples, so
/// the waveform joins without a click and nothing of the input changes.
pub fn join(last: f32, rebuilt_last: f32, new: &mut [f32], fade: usize) {
    let step = last - rebuilt_last;
    let fade = fade.max(1);
    for (i, v) in new.iter_mut().take(fade).enumerate() {
        *v += step * (1.0 - (i + 1) as f32 / (fade + 1) as f32);
    }
}

/// Step 5, the output: the piece's audio `rebuilt` put back as its assembly says, kept audio copied
/// from the input. Returns it with the range of its new samples.
fn assemble(
    task: &Task,
    assembly: &Assembly,
    rebuilt: Vec<f32>,
    fade: usize,
) -> (Vec<f32>, Range<usize>) {
    match (task, assembly) {
        (Task::Continue { audio, .. }, Assembly::Continue { start }) => {
            let mut out = audio.clone();
            let seam = audio.len() - start;
            let mut new = rebuilt[seam..].to_vec();
            if let (Some(&last), Some(&rebuilt_last)) = (audio.last(), rebuilt[..seam].last()) {
                join(last, rebuilt_last, &mut new, fade);
            }
            out.extend_from_slice(&new);
            let n = out.len();
            (out, audio.len()..n)
        }
        (Task::Fill { audio, .. }, &Assembly::Fill { start, end, a, b }) => {
            let region = splice(&audio[start..end], &rebuilt, a - start, b - start, fade);
            let mut out = audio.clone();
            out[start..end].copy_from_slice(&region);
            (out, a..b)
        }
        _ => {
            let n = rebuilt.len();
            (rebuilt, 0..n)
        }
    }
}

/// The work of [`Generator::run`], on borrowed parts (training previews use it with the EMA
/// weights in memory). The numbered steps are those of the module's header.
pub fn run_with(
    model: &Dit,
    encoder: &TextEncoder,
    data: &DataInfo,
    req: &Request,
    vocoder: Option<&Vocoder>,
    device: &Device,
    progress: &mut dyn FnMut(Progress),
) -> Result<Output> {
    let started = Instant::now();
    let cfg = &model.config;
    let extractor = LogMelExtractor::new(data.spectrogram())?;
    let norm = data.normaliser();

    // 1. The timeline: input where known, the frames to generate, normalised log-mel tokens.
    let piece = layout(req, data, cfg.frames)?;
    let input_mel = extractor.log_mel(&piece.timeline); // [n_mels, frames]
    let mut tokens = Tokens::new(&input_mel, &piece.known_frames, &norm, cfg);

    // 2. Windows over the tokens to generate, each with `context` tokens of what comes before.
    let p = cfg.patch_frames;
    let context = ((req.overlap_seconds as f64 / data.frame_seconds()) / p as f64).round() as usize;
    let windows = plan_windows(&tokens.settled, cfg.tokens(), context);

    // 3. Sampling: the prompt encoded once, then each window in turn.
    progress(Progress::Encoding);
    let text_started = Instant::now();
    let prompt = encode_prompt(encoder, req)?;
    let text_seconds = text_started.elapsed().as_secs_f64();
    let sampling_started = Instant::now();
    let windows_sampler = WindowSampler {
        model,
        device,
        req,
        prompt,
        offset_seconds: piece.offset_seconds,
        total_seconds: piece.total_seconds,
        patch_frames: p,
        frame_seconds: data.frame_seconds() as f32,
    };
    windows_sampler.sample_all(&windows, &mut tokens, progress)?;
    let sampling_seconds = sampling_started.elapsed().as_secs_f64();

    // 4. Back to a log-mel (known frames exactly the input's) and to audio.
    let vocoder_started = Instant::now();
    let log_mel = tokens.log_mel(&norm, cfg, &input_mel, &piece.known_frames);
    let rebuilt = vocode(&extractor, &piece, &log_mel, req, vocoder, progress)?;

    // 5. Splice.
    let sr = data.sample_rate as f64;
    let fade = (CROSSFADE_SECONDS as f64 * sr) as usize;
    let (audio, generated) = assemble(&req.task, &piece.assembly, rebuilt, fade);
    let vocoder_seconds = vocoder_started.elapsed().as_secs_f64();
    let log_mel = extractor.log_mel(&audio);
    Ok(Output {
        audio,
        sample_rate: data.sample_rate,
        log_mel,
        generated_seconds: generated.len() as f64 / sr,
        generated,
        windows: windows.len(),
        conversion: conversion_name(vocoder, req.griffin_lim_iters),
        timings: Timings {
            text: text_seconds,
            sampling: sampling_seconds,
            vocoder: vocoder_seconds,
            total: started.elapsed().as_secs_f64(),
        },
    })
}

/// `original` with `[a, b)` replaced by `new`, fading from the original into the new audio
/// over `fade` samples at each end of the span (inside it), so nothing outside changes.
pub fn splice(original: &[f32], new: &[f32], a: usize, b: usize, fade: usize) -> Vec<f32> {
    let mut out = original.to_vec();
    let fade = fade.min((b - a) / 2).max(1);
    for i in a..b {
        let w = ((i - a + 1) as f32 / fade as f32)
            .min((b - i) as f32 / fade as f32)
            .min(1.0);
        out[i] = (1.0 - w) * original[i] + w * new[i];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_continuation_joins_the_input_without_a_step() {
        // The input ended at 0.0 where the rebuilt audio (a vocoder's, whose phase differs)
        // had 0.5: spliced as is, the output would jump by 0.5 at the seam.
        let mut new = vec![0.5f32; 100];
        join(0.0, 0.5, &mut new, 20);
        assert!(new[0].abs() < 0.03, "{}", new[0]);
        // The correction shrinks steadily and is gone after the fade.
        assert!(new[..20].windows(2).all(|w| w[1] > w[0]));
        assert!(new[20..].iter().all(|&v| v == 0.5));
        // No step, nothing changes.
        let mut same = vec![0.25f32; 10];
        join(0.1, 0.1, &mut same, 5);
        assert!(same.iter().all(|&v| v == 0.25));
    }

    #[test]
    fn windows_cover_everything_unknown_with_context() {
        // Generation of 10 windows' worth: first window from 0, then steps of window - context.
        let plan = plan_windows(&[false; 300], 128, 32);
        assert_eq!(plan[0], (0, 128));
        assert_eq!(plan[1], (96, 224));
        assert_eq!(*plan.last().unwrap(), (172, 300));
        assert_eq!(plan.len(), 3);
        // A short piece is one short window.
        assert_eq!(plan_windows(&[false; 50], 128, 32), vec![(0, 50)]);
        // Nothing unknown, nothing to do.
        assert!(plan_windows(&[true; 50], 128, 32).is_empty());
    }

    #[test]
    fn a_short_gap_gets_context_on_both_sides() {
        let mut known = vec![true; 400];
        known[200..230].fill(false);
        let plan = plan_windows(&known, 128, 32);
        assert_eq!(plan, vec![(168, 296)]);
    }

    #[test]
    fn continuation_windows_start_in_the_input() {
        let mut known = vec![false; 400];
        known[..250].fill(true);
        let plan = plan_windows(&known, 128, 32);
        assert_eq!(plan, vec![(218, 346), (272, 400)]);
    }

    fn data() -> DataInfo {
        DataInfo {
            sample_rate: 1000,
            n_fft: 64,
            hop_length: 16,
            n_mels: 4,
            mel_mean: vec![0.0; 4],
            mel_std: vec![1.0; 4],
            text_model: String::new(),
            source: String::new(),
            hours: 0.0,
        }
    }

    fn request(task: Task) -> Request {
        Request {
            task,
            prompt: String::new(),
            genre: None,
            artist: None,
            controls: Default::default(),
            seed: 0,
            steps: 4,
            sampler: SamplerKind::Ddim,
            guidance: Guidance::new(1.0),
            overlap_seconds: 0.1,
            griffin_lim_iters: 4,
        }
    }

    #[test]
    fn long_inputs_are_cropped_to_the_edit_and_a_window_of_context() {
        // 100 s at 1 kHz; the window is 64 frames of 16 samples = 1024 samples.
        let audio = vec![0.1f32; 100_000];
        let fill = request(Task::Fill {
            audio: audio.clone(),
            from: 50.0,
            to: 51.0,
        });
        let piece = layout(&fill, &data(), 64).unwrap();
        assert_eq!(piece.timeline.len(), 1000 + 2 * 1024);
        assert!((piece.offset_seconds - 48.976).abs() < 1e-4);
        assert_eq!(piece.total_seconds, 100.0);
        assert!(matches!(
            piece.assembly,
            Assembly::Fill {
                start: 48976,
                end: 52024,
                a: 50000,
                b: 51000
            }
        ));
        // Frames touching the span are unknown, the rest known.
        let k = &piece.known_frames;
        let frame_of = |sample: usize| sample / 16;
        assert!(k[..frame_of(1024 - 32)].iter().all(|&x| x));
        assert!(
            k[frame_of(1024 + 32)..frame_of(2024 - 32)]
                .iter()
                .all(|&x| !x)
        );
        assert!(k[frame_of(2024 + 48)..].iter().all(|&x| x));

        let cont = request(Task::Continue {
            audio,
            seconds: 2.0,
        });
        let piece = layout(&cont, &data(), 64).unwrap();
        assert_eq!(piece.timeline.len(), 1024 + 2000);
        assert!(matches!(
            piece.assembly,
            Assembly::Continue { start: 98976 }
        ));
        assert_eq!(piece.total_seconds, 102.0);
        assert_eq!(
            piece.known_frames.iter().filter(|&&x| x).count(),
            (1024 - 32) / 16 + 1
        );
    }

    /// Regression: the token partly in the padding after a fill's piece was planned a window
    /// of its own, so a short fill in a long input sampled two windows (twice the time).
    #[test]
    fn a_short_fill_in_a_long_input_is_planned_as_one_window() {
        let fill = request(Task::Fill {
            audio: vec![0.1f32; 100_000],
            from: 50.0,
            to: 50.3,
        });
        let piece = layout(&fill, &data(), 64).unwrap();
        let frames = piece.known_frames.len();
        assert_ne!(
            frames % 4,
            0,
            "the piece must end inside a token for this test"
        );
        let n_tokens = frames.div_ceil(4).max(16);
        let (known, settled) = token_flags(&piece.known_frames, 4, n_tokens);
        assert!(!known[n_tokens - 1], "the last token holds padding");
        assert!(settled[n_tokens - 1]);
        // 0.1 s of overlap is 2 tokens of context; the span and its context fit one window.
        let plan = plan_windows(&settled, 16, 2);
        assert_eq!(plan.len(), 1, "{plan:?}");
        let (start, end) = plan[0];
        let unknown: Vec<usize> = (0..n_tokens).filter(|&j| !settled[j]).collect();
        assert!(start <= unknown[0] && *unknown.last().unwrap() < end);
    }

    #[test]
    fn tokens_wholly_in_the_padding_of_a_short_piece_are_sampled() {
        let mut known_frames = vec![true; 30];
        known_frames[10..20].fill(false);
        let (known, settled) = token_flags(&known_frames, 4, 16);
        assert_eq!(
            settled[..8],
            [true, true, false, false, false, true, true, true]
        );
        assert!(!known[7] && settled[7]);
        assert!(settled[8..].iter().all(|&s| !s));
        assert_eq!(plan_windows(&settled, 16, 2), vec![(0, 16)]);
    }

    /// Regression: the overlap error printed the f32 widened to f64 ("0.800000011920929 s").
    #[test]
    fn the_overlap_error_prints_the_overlap_as_given() {
        let mut req = request(Task::Generate { seconds: 1.0 });
        req.overlap_seconds = 0.8;
        let err = layout(&req, &data(), 64).err().unwrap().to_string();
        assert!(err.contains("0.8 s;"), "{err}");
        assert!(!err.contains("0.80000"), "{err}");
    }

    #[test]
    fn non_finite_output_is_refused_and_silence_is_recognised() {
        let dir = Path::new("models/broken");
        assert!(check_finite(&[0.0, 0.5, -1.0], dir).is_ok());
        let err = check_finite(&[0.0, f32::NAN, f32::INFINITY, 0.1], dir).unwrap_err();
        assert!(!err.is_bad_input());
        let msg = err.to_string();
        assert!(
            msg.contains("models/broken") && msg.contains(" 2 non-finite"),
            "{msg}"
        );
        assert!(is_silent(&[0.0, 1e-6, -1e-5]));
        assert!(!is_silent(&[0.0, 1e-4]));
    }

    #[test]
    fn inputs_with_non_finite_samples_are_refused() {
        let mut audio = vec![0.1f32; 5000];
        audio[7] = f32::NAN;
        let fill = request(Task::Fill {
            audio,
            from: 1.0,
            to: 2.0,
        });
        let err = layout(&fill, &data(), 64).err().unwrap();
        assert!(err.is_bad_input());
        assert!(err.to_string().contains("1 of its 5000 samples"), "{err}");
    }

    #[test]
    fn splicing_keeps_everything_outside_the_span() {
        let original: Vec<f32> = (0..100).map(|i| i as f32).collect();
        let new = vec![-1.0f32; 100];
        let out = splice(&original, &new, 30, 70, 5);
        assert_eq!(out[..30], original[..30]);
        assert_eq!(out[70..], original[70..]);
        assert_eq!(out[40..60], new[40..60]);
        // The fade moves monotonically from the original towards the new audio.
        assert!(out[30] > out[34] && out[34] == -1.0);
        assert!(out[69] > -1.0 && out[69] < original[69]);
    }
}
