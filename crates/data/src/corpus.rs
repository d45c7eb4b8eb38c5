//! The captioned corpus builder: plans clips from the sources, renders them in parallel, and
//! writes a Hugging Face AudioFolder (`DIR/{train,test}/*.wav` + `metadata.jsonl`).
//!
//! Every clip is a pure function of (seed, clip index), so a build can be interrupted and
//! resumed (finished clips, marked by their JSON sidecar, are kept) and gives the same corpus
//! whatever the thread count. The test split holds out whole styles, so no test clip shares
//! a groove with training.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::caption::{self, Facts};
use crate::error::{DataError, Result};
use crate::midi::{self, Renderer};
use crate::mma::{self, Groove, Song};
use crate::rng::{Rng, stable_hash};
use musicdiff_dsp::atomic::write_atomic;
use musicdiff_dsp::audio::{WavFormat, write_wav};

/// One line of `metadata.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClipMeta {
    /// Path of the audio relative to the split directory.
    pub file_name: String,
    /// The caption used for training.
    pub caption: String,
    /// Every phrasing of the caption.
    pub captions: Vec<String>,
    pub genre: String,
    pub artist: String,
    pub bpm: f64,
    pub key: String,
    pub time_signature: String,
    pub instruments: Vec<String>,
    /// Seconds.
    pub duration: f64,
    /// Where the music comes from, e.g. `mma:bossanova/BossaNova1Sus`.
    pub source: String,
    pub license: String,
    /// The SoundFont it was rendered with.
    pub soundfont: String,
}

/// Options of a corpus build.
#[derive(Debug, Clone)]
pub struct CorpusConfig {
    pub out: PathBuf,
    /// Total audio to produce.
    pub hours: f64,
    /// Target length of one clip.
    pub clip_seconds: f64,
    /// SoundFonts to render with (chosen per clip).
    pub soundfonts: Vec<PathBuf>,
    pub seed: u64,
    pub sample_rate: u32,
    /// Share of styles held out for the test split.
    pub test_fraction: f64,
    /// Chance that a channel's instrument is swapped within its GM family.
    pub remap_probability: f64,
}

impl CorpusConfig {
    /// Number of clips the build aims for.
    pub fn n_clips(&self) -> usize {
        (self.hours * 3600.0 / self.clip_seconds).ceil() as usize
    }

    fn validate(&self) -> Result<()> {
        let bad = |name, reason: String| Err(DataError::Invalid { name, reason });
        if !(self.hours > 0.0 && self.hours <= 10_000.0) {
            return bad("hours", format!("{} must be in (0, 10000]", self.hours));
        }
        if !(2.0..=600.0).contains(&self.clip_seconds) {
            return bad(
                "clip-seconds",
                format!("{} must be in [2, 600]", self.clip_seconds),
            );
        }
        if self.soundfonts.is_empty() {
            return bad("soundfont", "at least one SoundFont is needed".into());
        }
        if !(0.0..1.0).contains(&self.test_fraction) {
            return bad(
                "test-fraction",
                format!("{} must be in [0, 1)", self.test_fraction),
            );
        }
        Ok(())
    }
}

/// What a build did.
#[derive(Debug, Clone, Default)]
pub struct CorpusReport {
    /// Clips rendered by this run.
    pub rendered: usize,
    /// Clips found finished from an earlier run.
    pub resumed: usize,
    /// Clips that failed, with the reason.
    pub failed: Vec<(String, String)>,
    pub train_clips: usize,
    pub test_clips: usize,
    /// Hours of audio in the corpus.
    pub hours: f64,
    pub seconds_elapsed: f64,
    /// Grooves available and styles held out for testing.
    pub grooves: usize,
    pub test_styles: Vec<String>,
}

/// Is `style` held out for the test split?
fn is_test_style(style: &str, fraction: f64) -> bool {
    (stable_hash(style) % 10_000) as f64 / 10_000.0 < fraction
}

/// Renders one clip; returns its metadata.
fn render_clip(
    index: usize,
    groove: &Groove,
    cfg: &CorpusConfig,
    mma_home: &Path,
    renderers: &[Renderer],
) -> Result<ClipMeta> {
    let mut rng = Rng::for_item(cfg.seed, index as u64);
    let song = Song::random(groove, cfg.clip_seconds, &mut rng);
    let renderer = rng.choose(renderers);
    let id = clip_id(index, groove);
    let work = tempfile::tempdir().map_err(|e| DataError::io(std::env::temp_dir(), e))?;
    let midi_bytes = song.render_midi(mma_home, work.path(), &id)?;
    let midi_bytes = midi::remap_programs(&midi_bytes, &id, &mut rng, cfg.remap_probability)?;
    let info = midi::analyze(&midi_bytes, &id)?;
    let mut audio = renderer.render(&midi_bytes, &id, 1.0, song.seconds() + 1.0)?;
    let gain = midi::normalise(&mut audio, -20.0, 0.98);
    if gain == 1.0 && audio.iter().all(|v| v.abs() < 1e-6) {
        return Err(DataError::Midi {
            source_id: id,
            detail: "rendered silence".into(),
        });
    }
    let split = split_of(groove, cfg);
    let dir = cfg.out.join(split);
    let wav = dir.join(format!("{id}.wav"));
    write_wav(&wav, &audio, cfg.sample_rate, WavFormat::Pcm16)?;

    let time_signature = format!("{}/4", groove.beats);
    let facts = Facts {
        genre: groove.genre.to_string(),
        description: Some(groove.description.clone()),
        instruments: info.instruments.clone(),
        bpm: song.bpm as f64,
        key: Some(song.key()),
        time_signature: Some(time_signature.clone()),
        artist: None,
    };
    let (caption, captions) = caption::caption(&facts, &mut rng);
    let meta = ClipMeta {
        file_name: format!("{id}.wav"),
        caption,
        captions,
        genre: groove.genre.to_string(),
        artist: groove
            .author
            .as_ref()
            .map(|a| format!("MMA groove library ({a})"))
            .unwrap_or_else(|| "MMA groove library".into()),
        bpm: song.bpm as f64,
        key: song.key(),
        time_signature,
        instruments: info.instruments,
        // Microseconds are plenty, and short decimals read back exactly.
        duration: (audio.len() as f64 / cfg.sample_rate as f64 * 1e6).round() / 1e6,
        source: format!("mma:{}/{}", groove.style, groove.name),
        license: format!(
            "MMA groove library: GPL-2.0-or-later; SoundFont {}: {}",
            renderer.name(),
            soundfont_license(renderer.name())
        ),
        soundfont: renderer.name().to_string(),
    };
    let sidecar = dir.join(format!("{id}.json"));
    let text = serde_json::to_string(&meta).expect("metadata serialises");
    write_atomic(&sidecar, |w| {
        use std::io::Write;
        w.write_all(text.as_bytes())
            .map_err(|e| musicdiff_dsp::DspError::output(&sidecar, &e))
    })?;
    Ok(meta)
}

/// Licences of the SoundFonts that scripts/fetch-assets.sh installs.
fn soundfont_license(name: &str) -> &'static str {
    match name {
        "FluidR3_GM" => "MIT",
        "TimGM6mb" => "GPL-2.0",
        _ => "see the SoundFont's own terms",
    }
}

fn clip_id(index: usize, groove: &Groove) -> String {
    format!("mma-{index:06}-{}", groove.name.to_lowercase())
}

fn split_of(groove: &Groove, cfg: &CorpusConfig) -> &'static str {
    if is_test_style(&groove.style, cfg.test_fraction) {
        "test"
    } else {
        "train"
    }
}

/// A finished clip from an earlier run, if both its audio and sidecar exist.
fn finished(index: usize, groove: &Groove, cfg: &CorpusConfig) -> Option<ClipMeta> {
    let dir = cfg.out.join(split_of(groove, cfg));
    let id = clip_id(index, groove);
    if !dir.join(format!("{id}.wav")).exists() {
        return None;
    }
    let text = std::fs::read_to_string(dir.join(format!("{id}.json"))).ok()?;
    serde_json::from_str(&text).ok()
}

/// Builds (or resumes) the corpus. `progress(done, total)` is called after each clip.
pub fn build(
    cfg: &CorpusConfig,
    mma_home: &Path,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<CorpusReport> {
    cfg.validate()?;
    let start = Instant::now();
    let grooves = mma::load_grooves(mma_home)?;
    if grooves.is_empty() {
        return Err(DataError::MissingAsset {
            what: "MMA grooves",
            path: mma_home.join("lib/stdlib"),
        });
    }
    let renderers = cfg
        .soundfonts
        .iter()
        .map(|p| Renderer::load(p, cfg.sample_rate))
        .collect::<Result<Vec<_>>>()?;
    for split in ["train", "test"] {
        let d = cfg.out.join(split);
        std::fs::create_dir_all(&d).map_err(|e| DataError::io(&d, e))?;
    }
    let n = cfg.n_clips();
    // Visit grooves in a seeded order so that small builds still cover many styles.
    let mut order: Vec<usize> = (0..grooves.len()).collect();
    let mut rng = Rng::for_item(cfg.seed, u64::MAX);
    for i in (1..order.len()).rev() {
        order.swap(i, rng.range(0, i as u64 + 1) as usize);
    }
    let groove_of = |i: usize| &grooves[order[i % order.len()]];

    let done = std::sync::atomic::AtomicUsize::new(0);
    let failed = Mutex::new(Vec::new());
    let resumed = std::sync::atomic::AtomicUsize::new(0);
    let metas: Vec<Option<ClipMeta>> = (0..n)
        .into_par_iter()
        .map(|i| {
            let g = groove_of(i);
            let result = match finished(i, g, cfg) {
                Some(m) => {
                    resumed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    Some(m)
                }
                None => match render_clip(i, g, cfg, mma_home, &renderers) {
                    Ok(m) => Some(m),
                    Err(e) => {
                        failed
                            .lock()
                            .expect("no panics while holding the lock")
                            .push((clip_id(i, g), e.to_string()));
                        None
                    }
                },
            };
            let d = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            progress(d, n);
            result
        })
        .collect();

    let mut report = CorpusReport {
        resumed: resumed.into_inner(),
        failed: failed.into_inner().expect("lock not poisoned"),
        grooves: grooves.len(),
        ..Default::default()
    };
    let mut styles: Vec<String> = grooves
        .iter()
        .filter(|g| is_test_style(&g.style, cfg.test_fraction))
        .map(|g| g.style.clone())
        .collect();
    styles.dedup();
    report.test_styles = styles;
    for split in ["train", "test"] {
        let mut lines = String::new();
        let mut count = 0;
        for (i, m) in metas.iter().enumerate() {
            let Some(m) = m else { continue };
            if split_of(groove_of(i), cfg) != split {
                continue;
            }
            lines.push_str(&serde_json::to_string(m).expect("metadata serialises"));
            lines.push('\n');
            report.hours += m.duration / 3600.0;
            count += 1;
        }
        let path = cfg.out.join(split).join("metadata.jsonl");
        write_atomic(&path, |w| {
            use std::io::Write;
            w.write_all(lines.as_bytes())
                .map_err(|e| musicdiff_dsp::DspError::output(&path, &e))
        })?;
        if split == "train" {
            report.train_clips = count;
        } else {
            report.test_clips = count;
        }
    }
    report.rendered = report.train_clips + report.test_clips - report.resumed;
    if report.train_clips + report.test_clips == 0 {
        let (id, why) = report
            .failed
            .first()
            .cloned()
            .unwrap_or_else(|| ("-".into(), "no clips were planned".into()));
        return Err(DataError::Tool {
            tool: "corpus build",
            input: id,
            detail: format!("no clip could be rendered; first failure: {why}"),
        });
    }
    report.seconds_elapsed = start.elapsed().as_secs_f64();
    Ok(report)
}
