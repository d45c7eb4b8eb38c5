//! `musicdiff generate`, `fill` and `continue`: one [`Generator`] request each, written as a
//! WAV, a spectrogram PNG and a JSON sidecar describing exactly how it was made.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Args;
use indicatif::ProgressBar;
use musicdiff_diffusion::sampler::SamplerKind;
use musicdiff_dsp::audio::{self, WavFormat};
use musicdiff_dsp::image::{self, ImageOptions};
use musicdiff_pipeline::{Generator, Guidance, Output, PipelineError, Progress, Request, Task};
use serde_json::json;

use crate::progress::Ui;

/// Settings shared by the three commands.
#[derive(Debug, Args)]
pub struct SamplingArgs {
    /// Model directory (model.json + model.safetensors) [default: $MUSICDIFF_MODEL, else
    /// models/default beside the binary (or in a directory above it), else in the working
    /// directory].
    #[arg(long, value_name = "DIR")]
    pub model: Option<PathBuf>,
    /// Genre field of the conditioning (e.g. "jazz"); omitted = unconditioned.
    #[arg(long, value_name = "G")]
    pub genre: Option<String>,
    /// Artist field of the conditioning; omitted = unconditioned.
    #[arg(long, value_name = "A")]
    pub artist: Option<String>,
    /// Random seed: the same seed, model, settings and thread count give the same audio.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub seed: u64,
    /// Sampling steps [default: the model's, see its model.json].
    #[arg(long, value_name = "K")]
    pub steps: Option<usize>,
    /// Classifier-free guidance scale; 1 = no guidance [default: the model's].
    #[arg(long, value_name = "W", allow_negative_numbers = true)]
    pub cfg: Option<f32>,
    /// A separate guidance scale for the timing conditioning (the caption, genre and artist keep
    /// --cfg); costs a third network pass per step.
    #[arg(long = "cfg-timing", value_name = "W", allow_negative_numbers = true)]
    pub cfg_timing: Option<f32>,
    /// Sampler: dpm++2m, ddim, euler or heun [default: the model's].
    #[arg(long, value_name = "NAME")]
    pub sampler: Option<SamplerKind>,
    /// Seconds of context carried into each following window in long generation
    /// [default: the model's].
    #[arg(long, value_name = "SECONDS", allow_negative_numbers = true)]
    pub overlap: Option<f32>,
    /// Griffin-Lim iterations for spectrogram -> waveform [default: the model's].
    #[arg(long = "gl-iters", value_name = "N")]
    pub gl_iters: Option<usize>,
    /// Do not write the spectrogram PNG next to the WAV.
    #[arg(long = "no-png")]
    pub no_png: bool,
    /// Output WAV (16-bit PCM); OUT.png and OUT.json are written beside it.
    #[arg(short, long, value_name = "OUT.wav")]
    pub output: PathBuf,
}

#[derive(Debug, Args)]
#[command(after_long_help = "\
Writes OUT.wav, OUT.png (log-mel picture of the result) and OUT.json (prompt, fields, seed,
steps, sampler, guidance, model id and hash, durations, wall time and real-time factor).
Durations longer than the model's window are generated window by window, each continuing
from the end of the previous one.

Examples:
  musicdiff generate \"slow bossa nova on nylon guitar, A minor, 90 bpm\" -o bossa.wav
  musicdiff generate \"swing jazz with walking bass\" --seconds 120 --seed 7 -o swing.wav
  musicdiff generate \"fast jig played on fiddle\" --variations 3 --steps 40 -o jig.wav")]
pub struct GenerateCmd {
    /// What the music should be: instruments, style, key, tempo.
    #[arg(value_name = "PROMPT")]
    pub prompt: String,
    /// Length of the result in seconds.
    #[arg(
        long,
        value_name = "S",
        default_value_t = 10.0,
        allow_negative_numbers = true
    )]
    pub seconds: f32,
    /// Number of different results (seeds SEED, SEED+1, ...), written as OUT-1.wav, OUT-2.wav...
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub variations: u32,
    #[command(flatten)]
    pub sampling: SamplingArgs,
}

#[derive(Debug, Args)]
#[command(after_long_help = "\
Regenerates the span [--from, --to) of IN so that it joins the audio on both sides. Audio outside
the span is copied from IN sample for sample (as musicdiff reads it: mono at the model's sample
rate, so a 22050 Hz mono 16-bit WAV comes back bit-identical); the new audio fades in and out over
20 ms inside the span.

Example:
  musicdiff fill song.wav --from 4.0 --to 6.5 \"piano solo\" -o song-filled.wav")]
pub struct FillCmd {
    /// Audio to edit (WAV, FLAC, MP3, OGG).
    #[arg(value_name = "IN")]
    pub input: PathBuf,
    /// Start of the span to regenerate, seconds.
    #[arg(long, value_name = "T1", allow_negative_numbers = true)]
    pub from: f32,
    /// End of the span to regenerate, seconds (exclusive).
    #[arg(long, value_name = "T2", allow_negative_numbers = true)]
    pub to: f32,
    /// What the new part should be (empty = follow the surrounding audio only).
    #[arg(value_name = "PROMPT", default_value = "")]
    pub prompt: String,
    #[command(flatten)]
    pub sampling: SamplingArgs,
}

#[derive(Debug, Args)]
#[command(after_long_help = "\
Keeps IN as it is (mono at the model's sample rate) and appends --seconds of new audio that
continues from its end.

Example:
  musicdiff continue intro.wav --seconds 20 \"the band comes in, swing jazz\" -o longer.wav")]
pub struct ContinueCmd {
    /// Audio to extend (WAV, FLAC, MP3, OGG).
    #[arg(value_name = "IN")]
    pub input: PathBuf,
    /// Seconds of new audio to append.
    #[arg(long, value_name = "S", allow_negative_numbers = true)]
    pub seconds: f32,
    /// What the continuation should be (empty = follow the input only).
    #[arg(value_name = "PROMPT", default_value = "")]
    pub prompt: String,
    #[command(flatten)]
    pub sampling: SamplingArgs,
}

/// `out.wav` -> `out.EXT`.
fn sibling(path: &Path, ext: &str) -> PathBuf {
    path.with_extension(ext)
}

/// `out.wav` -> `out-K.wav` (1-based) when there are several variations.
fn variation_path(path: &Path, k: u32, of: u32) -> PathBuf {
    if of <= 1 {
        return path.to_path_buf();
    }
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("out");
    let ext = path.extension().and_then(|s| s.to_str()).unwrap_or("wav");
    path.with_file_name(format!("{stem}-{k}.{ext}"))
}

/// Checks what can be checked before loading anything.
fn check_output(out: &Path) -> Result<()> {
    if out
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        != Some("wav".into())
    {
        bail!(PipelineError::Request {
            field: "output",
            reason: format!("{} must end in .wav", out.display()),
        });
    }
    let parent = out.parent().filter(|p| !p.as_os_str().is_empty());
    if let Some(p) = parent
        && !p.is_dir()
    {
        bail!(PipelineError::Request {
            field: "output",
            reason: format!("directory {} does not exist", p.display()),
        });
    }
    Ok(())
}

fn load(args: &SamplingArgs, ui: &Ui) -> Result<(Generator, f64)> {
    let started = Instant::now();
    let dir = musicdiff_common::locate::model_dir(args.model.as_deref())?;
    let sp = ui.spinner(&format!("loading {}", dir.display()));
    let g = Generator::load(&dir);
    sp.finish_and_clear();
    let g = g?;
    Ok((g, started.elapsed().as_secs_f64()))
}

/// The request with the flags applied over the model's defaults.
fn request(g: &Generator, task: Task, prompt: &str, args: &SamplingArgs) -> Result<Request> {
    let mut req = g.request(task, prompt);
    req.genre = args.genre.clone();
    req.artist = args.artist.clone();
    req.seed = args.seed;
    if let Some(s) = args.steps {
        req.steps = s;
    }
    if let Some(s) = args.sampler {
        req.sampler = s;
    }
    req.guidance = Guidance {
        text: args.cfg.unwrap_or(req.guidance.text),
        timing: args.cfg_timing,
    };
    if let Some(o) = args.overlap {
        req.overlap_seconds = o;
    }
    if let Some(n) = args.gl_iters {
        req.griffin_lim_iters = n;
    }
    Ok(req)
}

/// Runs one request with a progress bar over the denoiser evaluations.
fn run(g: &Generator, req: &Request, ui: &Ui, label: &str) -> Result<Output> {
    let mut bar: Option<ProgressBar> = None;
    let mut vocoder: Option<ProgressBar> = None;
    let out = g.run(req, &mut |p| match p {
        Progress::Encoding => {}
        Progress::Sampling { done, total } => {
            let b = bar.get_or_insert_with(|| ui.bar(total as u64, label));
            b.set_position(done as u64);
        }
        Progress::Vocoding { done, total } => {
            if let Some(b) = bar.take() {
                b.finish_and_clear();
            }
            let v = vocoder.get_or_insert_with(|| ui.bar(total as u64, "griffin-lim"));
            v.set_position(done as u64);
        }
    });
    for b in [bar, vocoder].into_iter().flatten() {
        b.finish_and_clear();
    }
    Ok(out?)
}

/// Input audio, mono at the model's rate, with a note when it had to be converted.
fn read_input(path: &Path, g: &Generator, ui: &Ui) -> Result<Vec<f32>> {
    let loaded = super::load(path, g.sample_rate(), ui)?;
    let original = &loaded.original;
    if original.sample_rate != g.sample_rate() || original.channels.len() != 1 {
        ui.note(format!(
            "note: {} is {} Hz with {} channel(s); it is used (and kept) as mono {} Hz",
            path.display(),
            original.sample_rate,
            original.channels.len(),
            g.sample_rate()
        ));
    }
    Ok(loaded.mono)
}

/// Writes WAV, PNG and sidecar for one result and prints the summary line.
fn write_outputs(
    path: &Path,
    g: &Generator,
    req: &Request,
    out: &Output,
    load_seconds: f64,
    extra: serde_json::Value,
    png: bool,
) -> Result<()> {
    audio::write_wav(path, &out.audio, out.sample_rate, WavFormat::Pcm16)?;
    if png {
        image::write_png(
            &sibling(path, "png"),
            &out.log_mel,
            &ImageOptions::default(),
        )?;
    }
    let meta = g.meta();
    let sidecar = json!({
        "task": req.task.name(),
        "prompt": req.prompt,
        "genre": req.genre,
        "artist": req.artist,
        "seed": req.seed,
        "steps": req.steps,
        "sampler": req.sampler.name(),
        "cfg": req.guidance.text,
        "cfg_timing": req.guidance.timing,
        "overlap_seconds": req.overlap_seconds,
        "griffin_lim_iters": req.griffin_lim_iters,
        "model": {
            "id": meta.id,
            "dir": g.dir(),
            "sha256": meta.weights.sha256,
            "dtype": meta.weights.dtype,
            "step": meta.training.step,
        },
        "input": extra,
        "sample_rate": out.sample_rate,
        "seconds": out.seconds(),
        "generated_seconds": out.generated_seconds,
        "windows": out.windows,
        "timings": out.timings,
        "model_load_seconds": load_seconds,
        "wall_seconds": out.timings.total,
        "real_time_factor": out.real_time_factor(),
        "threads": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "musicdiff_version": env!("CARGO_PKG_VERSION"),
    });
    let json_path = sibling(path, "json");
    let text = serde_json::to_string_pretty(&sidecar)? + "\n";
    musicdiff_common::atomic::write_atomic(&json_path, |w| {
        std::io::Write::write_all(w, text.as_bytes())
            .map_err(|e| musicdiff_dsp::DspError::output(&json_path, &e))
    })?;
    let t = &out.timings;
    println!(
        "wrote {} ({:.2} s, {:.2} s new) in {:.2} s: real-time factor {:.3} (text {:.2} s, sampling {:.2} s over {} window(s), vocoder {:.2} s)",
        path.display(),
        out.seconds(),
        out.generated_seconds,
        t.total,
        out.real_time_factor(),
        t.text,
        t.sampling,
        out.windows,
        t.vocoder
    );
    Ok(())
}

pub fn run_generate(cmd: GenerateCmd, ui: &Ui) -> Result<()> {
    let a = &cmd.sampling;
    check_output(&a.output)?;
    if cmd.variations == 0 || cmd.variations > 100 {
        bail!(PipelineError::Request {
            field: "variations",
            reason: format!("{}; it must be between 1 and 100", cmd.variations),
        });
    }
    let (g, load_seconds) = load(a, ui)?;
    for k in 0..cmd.variations {
        let mut req = request(
            &g,
            Task::Generate {
                seconds: cmd.seconds,
            },
            &cmd.prompt,
            a,
        )?;
        req.seed = a.seed.wrapping_add(k as u64);
        let label = if cmd.variations > 1 {
            format!("sampling {}/{}", k + 1, cmd.variations)
        } else {
            "sampling".into()
        };
        let out = run(&g, &req, ui, &label)?;
        let path = variation_path(&a.output, k + 1, cmd.variations);
        write_outputs(
            &path,
            &g,
            &req,
            &out,
            load_seconds,
            serde_json::Value::Null,
            !a.no_png,
        )?;
    }
    Ok(())
}

/// Fill and continue: read the input, build the task from it, run, write. `extra` describes
/// the input in the sidecar, given its duration in seconds.
fn edit(
    input: &Path,
    prompt: &str,
    a: &SamplingArgs,
    ui: &Ui,
    task: impl FnOnce(Vec<f32>) -> Task,
    extra: impl FnOnce(f64) -> serde_json::Value,
) -> Result<()> {
    check_output(&a.output)?;
    let (g, load_seconds) = load(a, ui)?;
    let audio = read_input(input, &g, ui)?;
    let input_seconds = audio.len() as f64 / g.sample_rate() as f64;
    let task = task(audio);
    let verb = task.name();
    let req = request(&g, task, prompt, a)?;
    let out =
        run(&g, &req, ui, "sampling").with_context(|| format!("{verb}: {}", input.display()))?;
    let extra = extra(input_seconds);
    write_outputs(&a.output, &g, &req, &out, load_seconds, extra, !a.no_png)
}

pub fn run_fill(cmd: FillCmd, ui: &Ui) -> Result<()> {
    let (from, to) = (cmd.from, cmd.to);
    edit(
        &cmd.input,
        &cmd.prompt,
        &cmd.sampling,
        ui,
        |audio| Task::Fill { audio, from, to },
        |seconds| json!({ "path": cmd.input, "seconds": seconds, "from": from, "to": to }),
    )
}

pub fn run_continue(cmd: ContinueCmd, ui: &Ui) -> Result<()> {
    let seconds = cmd.seconds;
    edit(
        &cmd.input,
        &cmd.prompt,
        &cmd.sampling,
        ui,
        |audio| Task::Continue { audio, seconds },
        |s| json!({ "path": cmd.input, "seconds": s }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variations_get_numbered_names() {
        let p = Path::new("out/bossa.wav");
        assert_eq!(variation_path(p, 1, 1), PathBuf::from("out/bossa.wav"));
        assert_eq!(variation_path(p, 2, 3), PathBuf::from("out/bossa-2.wav"));
        assert_eq!(sibling(p, "json"), PathBuf::from("out/bossa.json"));
    }
}
