//! Scores audio -> log-mel -> audio conversions (vocoders, Griffin-Lim) against the clips they
//! were made from: the scorer of `scripts/bench-vocoder.sh` (docs/vocoder-bench.md).
//!
//! For every system, per clip (matched to the reference by file name): spectral convergence and
//! log-spectral distance on musicdiff's STFT (n_fft 1024, hop 256, centred), over the full band
//! and over the bins below 8 kHz (where HiFi-GAN's input mel stops); then FAD of the system's
//! clips against the reference clips on musicnn patch embeddings, grouped by clip, with the
//! jackknife interval of `musicdiff eval`. Every clip is read as the evaluation reads audio
//! (mono, resampled to 22050 Hz) and cut or zero-padded to its reference's length.
//!
//! Prints one markdown table (means over clips) and, with `--out`, writes a JSON file with the
//! per-clip values and bootstrap intervals of the means.
//!
//! `score_conversions --reference DIR --system NAME=DIR [--system NAME=DIR ...]
//!  [--out FILE.json] [--musicnn DIR]`

use std::error::Error;
use std::path::{Path, PathBuf};

use musicdiff_dsp::Matrix;
use musicdiff_dsp::audio;
use musicdiff_dsp::metrics::{log_spectral_distance, spectral_convergence};
use musicdiff_dsp::stft::{Stft, StftConfig};
use musicdiff_eval::stats::{
    BOOTSTRAP_RESAMPLES, Estimate, distance_with_interval, frechet_distance, mean_with_interval,
};
use musicdiff_eval::suite::PATCH_HOP_FRAMES;
use musicdiff_judge::Musicnn;
use rayon::prelude::*;
use serde_json::json;

const USAGE: &str = "usage: score_conversions --reference DIR --system NAME=DIR \
[--system NAME=DIR ...] [--out FILE.json] [--musicnn DIR]";

/// musicdiff's sample rate and STFT (the log-mel's analysis, as `musicdiff roundtrip` scores).
const SAMPLE_RATE: u32 = 22_050;
const N_FFT: usize = 1024;
const HOP: usize = 256;
/// HiFi-GAN's input mel stops at 8 kHz: the band-limited scores keep the bins below it.
const BAND_LIMIT_HZ: f64 = 8000.0;
/// Seed of the bootstrap intervals of the per-clip means (fixed: reproducible output).
const SEED: u64 = 0x5EED;

type Res<T> = Result<T, Box<dyn Error + Send + Sync>>;

struct Args {
    reference: PathBuf,
    systems: Vec<(String, PathBuf)>,
    out: Option<PathBuf>,
    musicnn: Option<PathBuf>,
}

fn parse_args() -> Result<Args, String> {
    let mut reference = None;
    let mut systems = Vec::new();
    let (mut out, mut musicnn) = (None, None);
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--reference" => reference = Some(PathBuf::from(value()?)),
            "--system" => {
                let v = value()?;
                let (name, dir) = v
                    .split_once('=')
                    .filter(|(n, d)| !n.is_empty() && !d.is_empty())
                    .ok_or(format!("--system takes NAME=DIR, got `{v}`"))?;
                if systems.iter().any(|(n, _)| n == name) {
                    return Err(format!("system `{name}` given twice"));
                }
                systems.push((name.to_string(), PathBuf::from(dir)));
            }
            "--out" => out = Some(PathBuf::from(value()?)),
            "--musicnn" => musicnn = Some(PathBuf::from(value()?)),
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    let reference = reference.ok_or("--reference is required")?;
    if systems.is_empty() {
        return Err("give at least one --system NAME=DIR".into());
    }
    Ok(Args {
        reference,
        systems,
        out,
        musicnn,
    })
}

/// The first `rows` rows (frequency bins) of a `[bins, frames]` magnitude.
fn low_bins(m: &Matrix<f32>, rows: usize) -> Matrix<f32> {
    Matrix::from_vec(rows, m.cols(), m.as_slice()[..rows * m.cols()].to_vec())
}

/// Spectral scores of one clip.
#[derive(Clone, Copy)]
struct ClipScores {
    sc: f64,
    lsd: f64,
    sc_low: f64,
    lsd_low: f64,
    /// RMS of the estimate over RMS of the reference (the scores are scale-sensitive).
    level: f64,
}

fn rms(x: &[f32]) -> f64 {
    (x.iter().map(|&v| v as f64 * v as f64).sum::<f64>() / x.len().max(1) as f64).sqrt()
}

fn scores(stft: &Stft<f32>, low: usize, reference: &[f32], estimate: &[f32]) -> ClipScores {
    let r = stft.forward(reference).magnitude();
    let e = stft.forward(estimate).magnitude();
    let (rl, el) = (low_bins(&r, low), low_bins(&e, low));
    ClipScores {
        sc: spectral_convergence(&r, &e),
        lsd: log_spectral_distance(&r, &e),
        sc_low: spectral_convergence(&rl, &el),
        lsd_low: log_spectral_distance(&rl, &el),
        level: rms(estimate) / rms(reference),
    }
}

/// musicnn penultimate embeddings of every patch of a clip, as the evaluation groups them.
fn embeddings(judge: &Musicnn, samples: &[f32]) -> Res<Vec<Vec<f32>>> {
    let analysis = judge.analyse(samples, SAMPLE_RATE, PATCH_HOP_FRAMES)?;
    Ok(analysis
        .patches
        .into_iter()
        .map(|p| p.penultimate)
        .collect())
}

fn estimate_json(e: Option<Estimate>) -> serde_json::Value {
    match e {
        Some(e) => json!({ "value": e.value, "low": e.low, "high": e.high }),
        None => serde_json::Value::Null,
    }
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn run(args: Args) -> Res<()> {
    let files = audio::audio_files(&args.reference)?;
    if files.len() < 2 {
        return Err(format!(
            "{} holds {} audio file(s); FAD needs at least 2 clips",
            args.reference.display(),
            files.len()
        )
        .into());
    }
    let names: Vec<String> = files.iter().map(|p| file_name(p)).collect();
    // Every system must have every reference clip, under the same file name.
    for (system, dir) in &args.systems {
        let missing: Vec<&str> = names
            .iter()
            .filter(|n| !dir.join(n).is_file())
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            return Err(format!(
                "system `{system}` ({}) lacks {} of the {} reference clips (first: {})",
                dir.display(),
                missing.len(),
                names.len(),
                missing[0]
            )
            .into());
        }
    }
    let judge = Musicnn::load(&Musicnn::locate(args.musicnn.as_deref())?)?;
    let stft = Stft::<f32>::new(StftConfig::new(N_FFT, HOP))?;
    // Bins k with k * sr / n_fft < 8 kHz.
    let low = (BAND_LIMIT_HZ * N_FFT as f64 / SAMPLE_RATE as f64).ceil() as usize;

    eprintln!(
        "score_conversions: {} reference clips in {}",
        files.len(),
        args.reference.display()
    );
    let references: Vec<Vec<f32>> = files
        .par_iter()
        .map(|p| audio::load_mono(p, SAMPLE_RATE).map_err(Into::into))
        .collect::<Res<_>>()?;
    let reference_embeddings: Vec<Vec<Vec<f32>>> = references
        .par_iter()
        .map(|x| embeddings(&judge, x))
        .collect::<Res<_>>()?;

    let mut table = String::from(
        "| system | SC | LSD dB | SC <=8k | LSD <=8k dB | FAD [interval] |\n\
         |---|---|---|---|---|---|\n",
    );
    let mut systems_json = Vec::new();
    for (system, dir) in &args.systems {
        eprintln!("score_conversions: scoring {system} ({})", dir.display());
        let per_clip: Vec<(ClipScores, Vec<Vec<f32>>, usize)> = names
            .par_iter()
            .zip(&references)
            .map(|(name, reference)| -> Res<_> {
                let mut x = audio::load_mono(&dir.join(name), SAMPLE_RATE)?;
                let len_diff = x.len().abs_diff(reference.len());
                x.resize(reference.len(), 0.0);
                Ok((
                    scores(&stft, low, reference, &x),
                    embeddings(&judge, &x)?,
                    len_diff,
                ))
            })
            .collect::<Res<_>>()?;
        let worst_len = per_clip.iter().map(|c| c.2).max().unwrap_or(0);
        if worst_len > HOP {
            eprintln!(
                "score_conversions: warning: a clip of `{system}` differs in length from its \
                 reference by {worst_len} samples (cut or zero-padded to the reference)"
            );
        }
        let column =
            |f: fn(&ClipScores) -> f64| -> Vec<f64> { per_clip.iter().map(|c| f(&c.0)).collect() };
        let mean = |v: &[f64]| mean_with_interval(v, BOOTSTRAP_RESAMPLES, SEED);
        let (sc, lsd) = (column(|c| c.sc), column(|c| c.lsd));
        let (sc_low, lsd_low) = (column(|c| c.sc_low), column(|c| c.lsd_low));
        let level = column(|c| c.level);
        let mine: Vec<Vec<Vec<f32>>> = per_clip.iter().map(|c| c.1.clone()).collect();
        let mut fad = distance_with_interval(frechet_distance, &mine, &reference_embeddings)?;
        // A distance is not negative, whatever the reflected interval says (as the suite).
        fad.low = fad.low.max(0.0);
        let m = |v: &[f64]| mean(v).map_or(f64::NAN, |e| e.value);
        table.push_str(&format!(
            "| {system} | {:.4} | {:.3} | {:.4} | {:.3} | {:.2} [{:.2}, {:.2}] |\n",
            m(&sc),
            m(&lsd),
            m(&sc_low),
            m(&lsd_low),
            fad.value,
            fad.low,
            fad.high
        ));
        let clips: Vec<serde_json::Value> = names
            .iter()
            .zip(&per_clip)
            .map(|(n, c)| {
                json!({
                    "name": n,
                    "sc": c.0.sc,
                    "lsd_db": c.0.lsd,
                    "sc_8k": c.0.sc_low,
                    "lsd_8k_db": c.0.lsd_low,
                    "rms_ratio": c.0.level,
                    "patches": c.1.len(),
                })
            })
            .collect();
        systems_json.push(json!({
            "name": system,
            "dir": dir.display().to_string(),
            "sc": estimate_json(mean(&sc)),
            "lsd_db": estimate_json(mean(&lsd)),
            "sc_8k": estimate_json(mean(&sc_low)),
            "lsd_8k_db": estimate_json(mean(&lsd_low)),
            "rms_ratio": estimate_json(mean(&level)),
            "fad": estimate_json(Some(fad)),
            "clips": clips,
        }));
    }
    print!("{table}");
    if let Some(out) = &args.out {
        let report = json!({
            "reference": args.reference.display().to_string(),
            "clips": names,
            "sample_rate": SAMPLE_RATE,
            "stft": { "n_fft": N_FFT, "hop": HOP, "window": "periodic Hann 1024", "center": true },
            "band_limit_bins": low,
            "band_limit_hz": BAND_LIMIT_HZ,
            "fad": {
                "embedding": "musicnn MTT penultimate (200), per patch, grouped by clip",
                "patch_hop_frames": PATCH_HOP_FRAMES,
                "interval": "95%, two-sample jackknife over clips",
            },
            "means": "over clips; intervals: 95% percentile bootstrap over clips",
            "systems": systems_json,
        });
        if let Some(parent) = out.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(out, serde_json::to_string_pretty(&report)? + "\n")?;
        eprintln!("score_conversions: wrote {}", out.display());
    }
    Ok(())
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("score_conversions: {e}\n{USAGE}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(args) {
        eprintln!("score_conversions: error: {e}");
        std::process::exit(1);
    }
}
