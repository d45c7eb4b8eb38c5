//! `musicdiff generate`, `fill` and `continue`: one [`Generator`] request each, written as a
//! WAV, a spectrogram PNG and a JSON sidecar describing exactly how it was made. The files of
//! a command (all variations' included) are written as one [`OutputSet`]: they appear together
//! once all have been written, or not at all.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Args;
use indicatif::ProgressBar;
use musicdiff_common::atomic::OutputSet;
use musicdiff_diffusion::sampler::SamplerKind;
use musicdiff_dsp::audio::{self, WavFormat};
use musicdiff_dsp::controls::{Controls, Meter};
use musicdiff_dsp::image::{self, ImageOptions};
use musicdiff_dsp::key::Key;
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
    /// Tempo in beats per minute, for models with musical controls [default: the number before
    /// "bpm" in the prompt, if any].
    #[arg(long, value_name = "BPM")]
    pub bpm: Option<f32>,
    /// Key, for models with musical controls: "A minor", "F# major", "Bb major", "E flat
    /// major" [default: the key the prompt names, if any].
    #[arg(long, value_name = "KEY", value_parser = parse_key)]
    pub key: Option<Key>,
    /// Meter (time signature), for models with musical controls: 2/4, 3/4, 4/4, 6/8, 2/2, 3/8,
    /// 6/4, 9/8 (others are "other") [default: one the prompt writes, or implies by a dance:
    /// waltz 3/4, jig 6/8, march 2/4, reel 4/4].
    #[arg(long, value_name = "N/M", value_parser = parse_meter)]
    pub meter: Option<Meter>,
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
    /// Spectrogram -> waveform: a vocoder directory (made by `musicdiff vocoder export`) or
    /// `griffin-lim` [default: $MUSICDIFF_VOCODER, else the bundled models/vocoder, else
    /// Griffin-Lim].
    #[arg(long, value_name = "DIR|griffin-lim")]
    pub vocoder: Option<super::VocoderChoice>,
    /// Griffin-Lim iterations, when converting with Griffin-Lim [default: the model's].
    #[arg(long = "gl-iters", value_name = "N")]
    pub gl_iters: Option<usize>,
    /// Do not write the spectrogram PNG next to the WAV.
    #[arg(long = "no-png")]
    pub no_png: bool,
    /// Write 32-bit float samples [default for fill and continue of a float or 24-bit input,
    /// whose samples it keeps exactly].
    #[arg(long, conflicts_with = "pcm16")]
    pub float: bool,
    /// Write 16-bit PCM even when the input is float (samples beyond full scale are clipped,
    /// with a warning) [default for generate and for 16-bit or compressed input].
    #[arg(long)]
    pub pcm16: bool,
    /// Output WAV; OUT.png and OUT.json are written beside it.
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
    /// Number of different results, written as OUT-1.wav, OUT-2.wav, ... with seeds SEED,
    /// SEED+1, ..., SEED+N-1 (seeds never wrap: SEED+N-1 above 18446744073709551615 is refused).
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

/// `out.wav` -> `out-K.wav` (1-based) when there are several variations; any file name, UTF-8
/// or not, keeps its stem and extension.
fn variation_path(path: &Path, k: u32, of: u32) -> PathBuf {
    if of <= 1 {
        return path.to_path_buf();
    }
    let mut name = OsString::from(path.file_stem().unwrap_or("out".as_ref()));
    name.push(format!("-{k}."));
    name.push(path.extension().unwrap_or("wav".as_ref()));
    path.with_file_name(name)
}

/// The seeds of `variations` results from `seed`: `seed`, `seed + 1`, ...; refused (rather
/// than wrapped to 0) when the last would pass `u64::MAX`.
fn variation_seeds(seed: u64, variations: u32) -> Result<Vec<u64>> {
    let last = seed.checked_add(u64::from(variations.max(1)) - 1);
    if last.is_none() {
        bail!(PipelineError::Request {
            field: "seed",
            reason: format!(
                "--seed {seed} with --variations {variations} would need seeds past the largest, {}; variations take seeds SEED..SEED+N-1, so use a smaller --seed",
                u64::MAX
            ),
        });
    }
    Ok((0..variations).map(|k| seed + u64::from(k)).collect())
}

/// An f32 setting as the decimal it was given as (`5.9`, not `5.900000095367432`): the
/// shortest decimal that reads back as the same f32, as an f64 for JSON.
fn json_f32(x: f32) -> f64 {
    format!("{x}").parse().unwrap_or(x as f64)
}

/// The sample format of the output WAV: the flags, else `default`.
fn wav_format(args: &SamplingArgs, default: WavFormat) -> WavFormat {
    if args.float {
        WavFormat::Float32
    } else if args.pcm16 {
        WavFormat::Pcm16
    } else {
        default
    }
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
    if let Some(b) = args.bpm.filter(|b| !(b.is_finite() && *b > 0.0)) {
        bail!(PipelineError::Request {
            field: "bpm",
            reason: format!("{b}; give a positive tempo in beats per minute"),
        });
    }
    let dir = musicdiff_common::locate::model_dir(args.model.as_deref())?;
    let sp = ui.spinner(&format!("loading {}", dir.display()));
    let g = Generator::load(&dir);
    sp.finish_and_clear();
    let g = g?.with_vocoder(super::load_vocoder(args.vocoder.as_ref(), ui)?)?;
    if !g.meta().model.controls
        && (args.bpm.is_some() || args.key.is_some() || args.meter.is_some())
    {
        ui.warn(format!(
            "the model {} has no musical controls: --bpm, --key and --meter are ignored (the prompt's words still count)",
            g.meta().id
        ));
    }
    Ok((g, started.elapsed().as_secs_f64()))
}

/// `--key`: a key name as `Key::parse` reads it.
fn parse_key(s: &str) -> Result<Key, String> {
    Key::parse(s).ok_or_else(|| {
        format!("`{s}` is not a key; write a note and a mode, e.g. \"A minor\", \"F# major\", \"Bb major\"")
    })
}

/// `--meter`: a time signature N/M.
fn parse_meter(s: &str) -> Result<Meter, String> {
    Meter::parse(s).ok_or_else(|| format!("`{s}` is not a time signature; write N/M, e.g. 3/4"))
}

/// The request with the flags applied over the model's defaults.
fn request(g: &Generator, task: Task, prompt: &str, args: &SamplingArgs) -> Result<Request> {
    let mut req = g.request(task, prompt);
    req.genre = args.genre.clone();
    req.artist = args.artist.clone();
    req.controls = req.controls.overridden_by(Controls {
        bpm: args.bpm,
        key: args.key,
        meter: args.meter,
    });
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
            let label = if g.vocoder().is_some() {
                "vocoder"
            } else {
                "griffin-lim"
            };
            let v = vocoder.get_or_insert_with(|| ui.bar(total as u64, label));
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

/// How one result is written.
struct Write<'a> {
    path: &'a Path,
    format: WavFormat,
    png: bool,
    load_seconds: f64,
    /// The input, for the sidecar (`null` for generate).
    input: serde_json::Value,
}

/// Writes WAV, PNG and sidecar of one result into `set` (nothing appears before the set is
/// committed), warns about clipped or silent audio, and returns the summary line to print once
/// the set is committed.
fn stage_outputs(
    set: &mut OutputSet,
    w: Write,
    g: &Generator,
    req: &Request,
    out: &Output,
    ui: &Ui,
) -> Result<String> {
    let path = w.path;
    if w.format == WavFormat::Pcm16 {
        let clipped = audio::pcm16_clipped(&out.audio);
        if clipped > 0 {
            ui.warn(format!(
                "warning: {clipped} of the {} samples written to {} are beyond full scale and clipped in 16-bit PCM; --float keeps them",
                out.audio.len(),
                path.display()
            ));
        }
    }
    if out.generated_is_silent() {
        ui.warn(format!(
            "warning: the {} s of new audio in {} are silent (every sample below -96 dBFS); the model may be untrained or broken",
            seconds(out.generated_seconds),
            path.display()
        ));
    }
    audio::stage_wav(set, path, &out.audio, out.sample_rate, w.format)?;
    if w.png {
        image::stage_png(
            set,
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
        "controls": if meta.model.controls { json!(req.controls) } else { json!(null) },
        "seed": req.seed,
        "steps": req.steps,
        "sampler": req.sampler.name(),
        "cfg": json_f32(req.guidance.text),
        "cfg_timing": req.guidance.timing.map(json_f32),
        "overlap_seconds": json_f32(req.overlap_seconds),
        "griffin_lim_iters": req.griffin_lim_iters,
        "conversion": out.conversion,
        "vocoder": g.vocoder().and_then(|v| v.meta()).map(|m| json!({
            "id": m.id,
            "sha256": m.weights.sha256,
            "steps": m.training.steps,
        })),
        "model": {
            "id": meta.id,
            "dir": g.dir().to_string_lossy(),
            "sha256": meta.weights.sha256,
            "dtype": meta.weights.dtype,
            "step": meta.training.step,
        },
        "input": w.input,
        "sample_rate": out.sample_rate,
        "sample_format": match w.format {
            WavFormat::Pcm16 => "pcm16",
            WavFormat::Float32 => "float32",
        },
        "seconds": out.seconds(),
        "generated_seconds": out.generated_seconds,
        "windows": out.windows,
        "timings": out.timings,
        "model_load_seconds": w.load_seconds,
        "wall_seconds": out.timings.total,
        "real_time_factor": out.real_time_factor(),
        "threads": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "musicdiff_version": env!("CARGO_PKG_VERSION"),
    });
    let json_path = sibling(path, "json");
    let text = serde_json::to_string_pretty(&sidecar)? + "\n";
    set.write(&json_path, |f| {
        std::io::Write::write_all(f, text.as_bytes())
            .map_err(|e| musicdiff_dsp::DspError::output(&json_path, &e))
    })?;
    let t = &out.timings;
    Ok(format!(
        "wrote {} ({} s, {} s new) in {:.2} s: real-time factor {:.3} (text {:.2} s, sampling {:.2} s over {} window(s), vocoder {:.2} s)",
        path.display(),
        seconds(out.seconds()),
        seconds(out.generated_seconds),
        t.total,
        out.real_time_factor(),
        t.text,
        t.sampling,
        out.windows,
        t.vocoder
    ))
}

/// A duration for messages: rounded to the millisecond, without trailing zeros (`2`, `0.75`,
/// `5.9`).
fn seconds(s: f64) -> String {
    let ms = format!("{s:.3}");
    ms.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Renames the staged files into place, then prints the summary lines.
fn commit(set: OutputSet, lines: Vec<String>) -> Result<()> {
    set.commit()?;
    for line in lines {
        println!("{line}");
    }
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
    let seeds = variation_seeds(a.seed, cmd.variations)?;
    let (g, load_seconds) = load(a, ui)?;
    let mut set = OutputSet::new();
    let mut lines = vec![];
    for (k, seed) in (1..).zip(seeds) {
        let mut req = request(
            &g,
            Task::Generate {
                seconds: cmd.seconds,
            },
            &cmd.prompt,
            a,
        )?;
        req.seed = seed;
        let label = if cmd.variations > 1 {
            format!("sampling {k}/{}", cmd.variations)
        } else {
            "sampling".into()
        };
        let out = run(&g, &req, ui, &label)?;
        let path = variation_path(&a.output, k, cmd.variations);
        let w = Write {
            path: &path,
            format: wav_format(a, WavFormat::Pcm16),
            png: !a.no_png,
            load_seconds,
            input: serde_json::Value::Null,
        };
        lines.push(stage_outputs(&mut set, w, &g, &req, &out, ui)?);
    }
    commit(set, lines)
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
    // The input's own sample format, so that a float input's samples come back exactly.
    let format = wav_format(a, audio::source_format(input)?);
    let input_seconds = audio.len() as f64 / g.sample_rate() as f64;
    let task = task(audio);
    let verb = task.name();
    let req = request(&g, task, prompt, a)?;
    let out =
        run(&g, &req, ui, "sampling").with_context(|| format!("{verb}: {}", input.display()))?;
    let w = Write {
        path: &a.output,
        format,
        png: !a.no_png,
        load_seconds,
        input: extra(input_seconds),
    };
    let mut set = OutputSet::new();
    let line = stage_outputs(&mut set, w, &g, &req, &out, ui)?;
    commit(set, vec![line])
}

pub fn run_fill(cmd: FillCmd, ui: &Ui) -> Result<()> {
    let (from, to) = (cmd.from, cmd.to);
    edit(
        &cmd.input,
        &cmd.prompt,
        &cmd.sampling,
        ui,
        |audio| Task::Fill { audio, from, to },
        |seconds| {
            json!({
                "path": cmd.input.to_string_lossy(),
                "seconds": seconds,
                "from": json_f32(from),
                "to": json_f32(to),
            })
        },
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
        |s| json!({ "path": cmd.input.to_string_lossy(), "seconds": s }),
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

    /// Regression: a stem that is not UTF-8 was replaced by "out".
    #[cfg(unix)]
    #[test]
    fn variations_of_a_non_utf8_name_keep_its_stem() {
        use std::ffi::OsStr;
        use std::os::unix::ffi::OsStrExt;
        let p = Path::new("dir").join(OsStr::from_bytes(b"b\xffd.wav"));
        let v = variation_path(&p, 2, 3);
        assert_eq!(v.parent(), Some(Path::new("dir")));
        assert_eq!(v.file_name().unwrap().as_bytes(), b"b\xffd-2.wav");
    }

    /// Regression: `--seed 18446744073709551615 --variations 2` wrapped to seed 0.
    #[test]
    fn variation_seeds_never_wrap() {
        assert_eq!(variation_seeds(7, 3).unwrap(), vec![7, 8, 9]);
        assert_eq!(variation_seeds(u64::MAX, 1).unwrap(), vec![u64::MAX]);
        assert_eq!(
            variation_seeds(u64::MAX - 1, 2).unwrap(),
            vec![u64::MAX - 1, u64::MAX]
        );
        let err = variation_seeds(u64::MAX, 2).unwrap_err().to_string();
        assert!(err.contains("--seed 18446744073709551615"), "{err}");
    }

    /// Regression: f32 settings were written to sidecars as f64 noise (5.900000095367432).
    #[test]
    fn f32_settings_are_written_as_given() {
        assert_eq!(json_f32(5.9), 5.9);
        assert_eq!(json_f32(0.1), 0.1);
        assert_eq!(json!({ "x": json_f32(5.9) }).to_string(), r#"{"x":5.9}"#);
        assert_eq!(seconds(5.900000095367432), "5.9");
        assert_eq!(seconds(2.0), "2");
        assert_eq!(seconds(0.74997), "0.75");
    }
}
